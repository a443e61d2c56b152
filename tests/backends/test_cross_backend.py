"""One network on every backend (tests/backends/names.py): LeNet-5's trained baseline on
PyTorch, on ONNX Runtime (its export) and on Keras (rebuilt with the same weights) lists the same
layers and, for the same k vector, scores the same accuracy within 0.1 points on the same
split."""

import numpy as np
import pytest

for _framework in ("onnxruntime", "tensorflow"):  # every backend runs here: skip without one
    pytest.importorskip(_framework)

from tests.backends.names import BACKEND_NAMES, REFERENCE
from weightshare.dse.clustering import ClusterCache
from weightshare.modes.loading import load_backend
from weightshare.networks import get_network

K_VECTORS = (
    {"conv1": 4, "conv2": 8, "fc1": 4, "fc2": 16, "fc3": 32},
    {"conv1": 2, "conv2": 2, "fc1": 2, "fc2": 2, "fc3": 2},
    {"conv1": 64, "fc1": 3},
)


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    spec = get_network("lenet5_fashionmnist")
    cache = tmp_path_factory.mktemp("cache")
    out = {}
    for name in BACKEND_NAMES:
        backend, path = load_backend(spec, None, cache, None, 2, backend=name)
        assert backend.name == name and path.name == "lenet5_fashionmnist.pt"
        out[name] = backend
    return out


def test_all_backends_list_the_same_layers_and_weights(backends):
    reference = backends[REFERENCE]
    for backend in backends.values():
        assert [(x.name, x.shape, x.kind) for x in backend.layers()] == [
            (x.name, x.shape, x.kind) for x in reference.layers()
        ]
        assert backend.n_unclustered() == reference.n_unclustered()
        for layer in reference.layers():
            assert np.array_equal(
                backend.get_weights(layer.name), reference.get_weights(layer.name)
            )


@pytest.mark.parametrize("k", K_VECTORS, ids=["mixed", "k2", "partial"])
def test_same_k_vector_same_accuracy_within_a_tenth_of_a_point(backends, search_split, k):
    pytorch = backends[REFERENCE]
    cache = ClusterCache({name: pytorch.get_weights(name) for name in k})
    shared = {name: cache.get(name, kk).dequantize() for name, kk in k.items()}
    scores = {}
    for name, backend in backends.items():
        baseline = backend.evaluate(search_split)
        backend.set_weights(shared)
        try:
            scores[name] = (baseline, backend.evaluate(search_split))
        finally:
            backend.restore()
        assert np.array_equal(backend.evaluate(search_split).correct, baseline.correct)
    ref_base, ref_cand = scores[REFERENCE]
    for name, (base, cand) in scores.items():
        assert abs(base.top1 - ref_base.top1) <= 0.001, name
        assert abs(cand.top1 - ref_cand.top1) <= 0.001, (name, cand.top1, ref_cand.top1)
        assert (cand.correct != ref_cand.correct).mean() <= 0.001, name
