import numpy as np
import pytest
import torch

from tests.backends.conformance import BackendConformance
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into


def _baseline_backend(name: str) -> PyTorchBackend:
    spec = get_network(name)
    model = load_into(spec.build(), BASELINE_DIR / f"{name}.pt")
    return PyTorchBackend(model, spec.input_size, threads=2)


def _seeded_backend(name: str) -> PyTorchBackend:
    """A freshly initialised (seed 0) network: the contract does not depend on training."""
    spec = get_network(name)
    torch.manual_seed(0)
    return PyTorchBackend(spec.build(), spec.input_size, threads=2)


class TestLeNet5Conformance(BackendConformance):
    @pytest.fixture
    def backend(self):
        return _baseline_backend("lenet5_fashionmnist")

    @pytest.fixture
    def split(self, small_search):
        return small_search


class TestMobileNetV2Conformance(BackendConformance):
    @pytest.fixture(scope="class")
    def backend(self):
        return _seeded_backend("mobilenetv2_fashionmnist")

    @pytest.fixture
    def split(self, small_search):
        return small_search


def test_lenet5_layers_are_listed_with_canonical_names_shapes_and_kinds():
    backend = _baseline_backend("lenet5_fashionmnist")
    assert [(x.name, x.shape, x.kind) for x in backend.layers()] == [
        ("conv1", (6, 1, 5, 5), "conv"),
        ("conv2", (16, 6, 5, 5), "conv"),
        ("fc1", (120, 400), "linear"),
        ("fc2", (84, 120), "linear"),
        ("fc3", (10, 84), "linear"),
    ]
    assert backend.n_unclustered() == 6 + 16 + 120 + 84 + 10  # the biases


def test_mobilenet_depthwise_convs_are_clusterable_and_batchnorm_is_not():
    backend = _seeded_backend("mobilenetv2_fashionmnist")
    kinds = [layer.kind for layer in backend.layers()]
    assert kinds.count("depthwise_conv") == 8
    assert kinds[-1] == "linear"
    assert not any("bn" in layer.name or "BatchNorm" in layer.name for layer in backend.layers())
    model = backend.model
    clustered = sum(layer.n_weights for layer in backend.layers())
    total = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    assert clustered + backend.n_unclustered() == total


def test_the_whole_state_dict_is_bit_identical_after_restore(small_search):
    backend = _seeded_backend("resnet20_fashionmnist")
    before = {k: v.clone() for k, v in backend.model.state_dict().items()}
    backend.set_weights(
        {layer.name: np.zeros(layer.shape, np.float32) for layer in backend.layers()}
    )
    backend.evaluate(small_search)
    backend.restore()
    after = backend.model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key


def test_evaluate_uses_the_thread_count_it_was_given(small_search):
    backend = _baseline_backend("lenet5_fashionmnist")
    backend.threads = 1
    backend.evaluate(small_search)
    assert torch.get_num_threads() == 1


def test_threads_must_be_positive():
    spec = get_network("lenet5_fashionmnist")
    with pytest.raises(UserError, match="--threads must be an int >= 1"):
        PyTorchBackend(spec.build(), 28, threads=0)
