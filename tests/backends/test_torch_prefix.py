"""Prefix reuse: the model run from one layer on gives the very logits of the full pass."""

import numpy as np
import pytest
import torch

from weightshare.backends.pytorch import PREFIX_CACHE_BYTES, PyTorchBackend
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.datasets import Split


def _backend(name: str, **options) -> PyTorchBackend:
    spec = get_network(name)
    model = load_into(spec.build(), BASELINE_DIR / f"{name}.pt")
    return PyTorchBackend(model, spec.input_size, threads=1, batch_size=96, **options)


def _two_parts(search_split, n: int) -> list[Split]:
    """Two consecutive parts of the search split (the evaluator scores a split in parts)."""
    return [
        Split("a", search_split.images[:n], search_split.labels[:n]),
        Split("b", search_split.images[n : 2 * n], search_split.labels[n : 2 * n]),
    ]


def _coarse(weights: np.ndarray) -> np.ndarray:
    """A visibly damaged copy (every weight rounded to a multiple of a quarter of its std)."""
    step = weights.std() / 4
    return (np.round(weights / step) * step).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "n"),
    [
        ("lenet5_fashionmnist", 250),
        ("lenet300_fashionmnist", 250),
        ("resnet20_fashionmnist", 120),
        ("squeezenet_fashionmnist", 120),
    ],
)
def test_running_from_the_shared_layer_gives_the_full_pass_logits_bit_for_bit(
    search_split, name, n
):
    backend = _backend(name)
    parts = _two_parts(search_split, n)
    names = [layer.name for layer in backend.layers()]
    run_after = []
    for layer in names:
        backend.set_weights({layer: _coarse(backend.get_weights(layer))})
        try:
            for split in parts:
                full = backend.predict(split)
                # twice: the second call runs on the cached activations
                for _ in range(2):
                    after = backend.predict_after(split, layer)
                    if after is None:
                        break
                    assert after.dtype == np.float32 and after.shape == full.shape
                    np.testing.assert_array_equal(after, full)
                run_after.append(after is not None)
        finally:
            backend.restore()
    # every layer but the first has activations before it to reuse (LeNet-300's first reads a
    # flattened input, which is reused too; LeNet-5's, ResNet-20's and SqueezeNet's read the
    # input itself). In a SqueezeNet fire module both expand convs read the squeeze output and
    # are concatenated: the suffix of one expand conv reads the other's output from the cache.
    assert all(run_after[len(parts) :])
    assert backend.predict_after(parts[0], names[0]) is None or name == "lenet300_fashionmnist"


def test_activations_are_cached_per_split_and_dropped_for_another_layer(search_split):
    backend = _backend("lenet5_fashionmnist")
    a, b = _two_parts(search_split, 100)
    backend.predict_after(a, "fc1")
    backend.predict_after(b, "fc1")
    layer, cached = backend._frontier
    assert layer == "fc1" and [s for s, _ in cached.values()] == [a, b]
    # the cached activations are those of the pristine layers before fc1: a changed fc1 reads them
    backend.set_weights({"fc1": np.zeros_like(backend.get_weights("fc1"))})
    try:
        np.testing.assert_array_equal(backend.predict_after(a, "fc1"), backend.predict(a))
    finally:
        backend.restore()
    backend.predict_after(a, "fc2")
    layer, cached = backend._frontier
    assert layer == "fc2" and [s for s, _ in cached.values()] == [a]


def test_a_fire_module_expand_conv_reads_its_sibling_branch_from_the_cache():
    # SqueezeNet's fire module: squeeze -> (expand1x1, expand3x3) -> concatenation. Sharing
    # one expand conv reruns it and what follows, never the squeeze conv nor the other branch:
    # both are frontier values, cached once per batch.
    backend = _backend("squeezenet_fashionmnist")
    for layer, sibling in (
        ("fire3.expand3x3", "fire3.expand1x1"),
        ("fire3.expand1x1", "fire3.expand3x3"),
    ):
        suffix = backend._prefix.suffix(layer)
        called = [n.target for n in suffix.nodes if n.op == "call_module"]
        assert called[0] == layer and "fire3.squeeze" not in called and sibling not in called
        # the frontier: the squeeze's ReLU and the sibling's ReLU (inputs of the concatenation)
        assert [n.all_input_nodes[0].target for n in suffix.frontier] == ["fire3.squeeze", sibling]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_a_torchscript_model_falls_back_to_the_full_pass(search_split):
    spec = get_network("lenet5_fashionmnist")
    model = load_into(spec.build(), BASELINE_DIR / "lenet5_fashionmnist.pt")
    scripted = torch.jit.script(model)
    backend = PyTorchBackend(scripted, spec.input_size, threads=1)
    assert backend.predict_after(_two_parts(search_split, 50)[0], "fc2") is None


def test_step_one_reports_the_same_figures_with_and_without_prefix_reuse(search_split):
    from weightshare.dse.evaluator import Evaluator
    from weightshare.dse.sensitivity import one_layer_candidates

    split = Split("search", search_split.images[:300], search_split.labels[:300])
    evaluator = Evaluator(_backend("lenet5_fashionmnist"), {"search": split})
    calls = []
    run_after = evaluator.backend.predict_after
    evaluator.backend.predict_after = lambda *a: calls.append(a[1]) or run_after(*a)
    figures = {}
    for reuse in (False, True):
        evaluator.prefix_reuse = reuse
        figures[reuse] = [
            (r.key, r.correct, r.top5, r.kl, r.flip, r.cross_entropy, r.bits_coded)
            for r in map(evaluator.evaluate, one_layer_candidates({"conv2": (2, 8), "fc2": (3,)}))
        ]
    assert figures[True] == figures[False]
    assert len({f[3] for f in figures[True]}) == 3  # three different damages
    # with reuse on, each one-layer candidate went through predict_after, part by part
    assert calls == ["conv2"] * 6 + ["fc2"] * 3


FC1_IMAGE = 400 * 4  # bytes of fc1's frontier (LeNet-5's flattened 16x5x5 float32) per image


def test_a_split_past_the_byte_bound_is_not_cached_and_gets_the_full_pass(search_split):
    assert PREFIX_CACHE_BYTES == 2 * 2**30
    # room for one 100-image split of fc1's activations, not two
    backend = _backend("lenet5_fashionmnist", prefix_cache_bytes=150 * FC1_IMAGE)
    a, b = _two_parts(search_split, 100)
    suffix = backend._prefix.suffix("fc1")
    computed = []
    frontier_values = suffix.frontier_values
    suffix.frontier_values = lambda x: computed.append(len(x)) or frontier_values(x)
    backend.set_weights({"fc1": _coarse(backend.get_weights("fc1"))})
    try:
        np.testing.assert_array_equal(backend.predict_after(a, "fc1"), backend.predict(a))
        assert backend.prefix_cached_bytes() == 100 * FC1_IMAGE and computed == [96, 4]
        # b would take 200 images' worth past the bound: refused after its first batch, for good
        assert backend.predict_after(b, "fc1") is None and computed == [96, 4, 96]
        assert backend.predict_after(b, "fc1") is None and computed == [96, 4, 96]
        assert backend.prefix_cached_bytes() == 100 * FC1_IMAGE
        np.testing.assert_array_equal(backend.predict_after(a, "fc1"), backend.predict(a))
        assert computed == [96, 4, 96]  # a still comes from the cache
    finally:
        backend.restore()
    # another layer starts from an empty cache; a bound of 0 caches nothing
    backend.predict_after(b, "fc2")
    assert backend.prefix_cached_bytes() == 100 * 120 * 4
    no_room = _backend("lenet5_fashionmnist", prefix_cache_bytes=0)
    assert no_room.predict_after(a, "fc3") is None and no_room.prefix_cached_bytes() == 0


def test_step_one_reports_the_same_figures_under_a_small_byte_bound(search_split):
    from weightshare.dse.evaluator import Evaluator
    from weightshare.dse.sensitivity import one_layer_candidates

    split = Split("search", search_split.images[:300], search_split.labels[:300])
    figures, served = {}, {}
    # 1 MB: two of the three 100-image parts of conv2's activations (6x14x14 float32 each)
    for bound in (PREFIX_CACHE_BYTES, 1_000_000):
        evaluator = Evaluator(
            _backend("lenet5_fashionmnist", prefix_cache_bytes=bound), {"search": split}
        )
        run_after = evaluator.backend.predict_after
        served[bound] = []

        def spy(sub, layer, run_after=run_after, log=served[bound]):
            logits = run_after(sub, layer)
            log.append((layer, logits is not None))
            return logits

        evaluator.backend.predict_after = spy
        figures[bound] = [
            (r.key, r.correct, r.top5, r.kl, r.flip, r.cross_entropy, r.bits_coded)
            for r in map(evaluator.evaluate, one_layer_candidates({"conv2": (2, 8), "fc2": (3,)}))
        ]
    assert figures[1_000_000] == figures[PREFIX_CACHE_BYTES]
    assert served[PREFIX_CACHE_BYTES] == [("conv2", True)] * 6 + [("fc2", True)] * 3
    conv2 = [("conv2", True), ("conv2", True), ("conv2", False)]
    assert served[1_000_000] == conv2 * 2 + [("fc2", True)] * 3
