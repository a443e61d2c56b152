"""Bias correction, BatchNorm re-estimation and Fisher importance on a real PyTorch model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.dse.fake_backend import NumpyMLP
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.dse.correction import Calibrator, PerBitOptions, bias_shift, parse_correct
from weightshare.errors import UserError
from weightshare.networks.datasets import calibration_indices, load_calibration


def tiny_backend() -> PyTorchBackend:
    """conv (no bias) -> BN -> ReLU -> depthwise conv (bias) -> BN -> flatten -> linear."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(4 * 7 * 7, 10),
    )
    with torch.no_grad():  # non-trivial running statistics
        for bn in (model[1], model[4]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return PyTorchBackend(model, 28, threads=1, batch_size=40)


def rounded(backend, name: str) -> np.ndarray:
    """A crude "shared" version of a layer's weights (multiples of 0.25)."""
    return (np.round(backend.get_weights(name) * 4) / 4).astype(np.float32)


def module_outputs(backend, index: int, split) -> torch.Tensor:
    """Outputs of ``model[:index + 1]`` on ``split``, concatenated."""
    head = backend.model[: index + 1]
    with torch.no_grad():
        return torch.cat([head(x) for x in backend.feeder.batches(split, 40)])


@pytest.fixture(scope="module")
def calibration():
    return load_calibration(100)


def test_calibration_images_are_a_seeded_prefix_of_the_training_set(calibration):
    assert calibration.name == "calibration[100]"
    assert calibration.images.shape == (100, 28, 28)
    np.testing.assert_array_equal(
        calibration_indices(60_000, 5), calibration_indices(60_000, 100)[:5]
    )
    with pytest.raises(
        UserError, match=r"--calibration-images must be an int in \[1, 60000\]; got 0"
    ):
        calibration_indices(60_000, 0)


def test_bias_correction_folded_into_batchnorm_restores_the_output_mean(calibration):
    backend = tiny_backend()
    fp32 = module_outputs(backend, 1, calibration).mean(dim=(0, 2, 3))
    calibrator = Calibrator(backend, PerBitOptions(correct=("bias",)), calibration)
    dense = {"0": rounded(backend, "0")}
    backend.set_weights(dense)
    uncorrected = module_outputs(backend, 1, calibration).mean(dim=(0, 2, 3))
    assert calibrator.apply(backend, dense) == {"bias_skipped": []}
    corrected = module_outputs(backend, 1, calibration).mean(dim=(0, 2, 3))
    assert float((uncorrected - fp32).abs().max()) > 1e-2
    torch.testing.assert_close(corrected, fp32, atol=1e-5, rtol=0)
    backend.restore()
    assert torch.equal(backend.model[1].running_mean, backend._pristine["1.running_mean"])


@pytest.mark.parametrize(("name", "index", "dims"), [("3", 3, (0, 2, 3)), ("6", 6, (0,))])
def test_bias_correction_into_the_bias_uses_the_fp32_inputs(calibration, name, index, dims):
    """Depthwise conv and linear layer (their inputs are fp32: only this layer is shared)."""
    backend = tiny_backend()
    fp32 = module_outputs(backend, index, calibration).mean(dim=dims)
    calibrator = Calibrator(backend, PerBitOptions(correct=("bias",)), calibration)
    dense = {name: rounded(backend, name)}
    backend.set_weights(dense)
    calibrator.apply(backend, dense)
    torch.testing.assert_close(
        module_outputs(backend, index, calibration).mean(dim=dims), fp32, atol=1e-5, rtol=0
    )


def test_bias_shift_is_zero_for_unchanged_weights():
    weights = np.random.default_rng(0).standard_normal((6, 2, 3, 3)).astype(np.float32)
    patch = np.random.default_rng(1).standard_normal((3, 18))
    np.testing.assert_array_equal(bias_shift(patch, weights, weights), np.zeros(6))


def test_bn_reestimation_measures_the_shared_network_and_restores(calibration):
    backend = tiny_backend()
    backend.set_weights({"0": rounded(backend, "0")})
    assert backend.reestimate_bn(calibration) == 2
    conv_out = module_outputs(backend, 0, calibration)
    torch.testing.assert_close(
        backend.model[1].running_mean, conv_out.mean(dim=(0, 2, 3)), atol=1e-5, rtol=0
    )
    assert backend.model[1].momentum == 0.1
    assert not backend.model.training
    backend.restore()
    for key, tensor in backend._pristine.items():
        assert torch.equal(backend._live[key], tensor), key


def test_fisher_is_the_mean_squared_minibatch_gradient(calibration):
    backend = tiny_backend()
    head = type(calibration)("head", calibration.images[:32], calibration.labels[:32])
    fisher = backend.fisher(head, batch_size=16)
    assert set(fisher) == {"0", "3", "6"}
    expected = torch.zeros_like(backend.model[6].weight)
    for start in (0, 16):
        x = next(iter(backend.feeder.batches(head, 32)))[start : start + 16]
        y = torch.from_numpy(head.labels[start : start + 16])
        loss = nn.functional.cross_entropy(backend.model(x), y)
        (grad,) = torch.autograd.grad(loss, [backend.model[6].weight])
        expected += grad.square() / 2
    np.testing.assert_allclose(fisher["6"], expected.numpy(), rtol=1e-5, atol=1e-12)
    assert fisher["0"].shape == (4, 1, 3, 3)


def test_a_backend_without_gradients_refuses_in_one_line():
    backend = NumpyMLP()
    with pytest.raises(
        UserError,
        match="--clustering weighted needs gradients and activations, "
        f"which the {backend.name} backend does not give; use --backend pytorch",
    ):
        Calibrator(backend, PerBitOptions(clustering="weighted"))
    with pytest.raises(UserError, match="--correct bn needs"):
        Calibrator(backend, PerBitOptions(correct=("bn",)))


def test_parse_correct():
    assert parse_correct("none") == ()
    assert parse_correct("bn,bias") == ("bias", "bn")
    with pytest.raises(
        UserError, match="--correct must be none or a comma list of bias, bn; got 'bs'"
    ):
        parse_correct("bs")


def test_narrowed_shares_the_measured_state(calibration):
    backend = tiny_backend()
    full = Calibrator(backend, PerBitOptions("weighted", ("bias", "bn")), calibration)
    bn_only = full.narrowed(PerBitOptions(correct=("bn",)))
    assert bn_only.importance is None and bn_only._means is None
    assert full.narrowed(PerBitOptions("weighted")).importance is full.importance
    with pytest.raises(UserError, match="narrowed options"):
        bn_only.narrowed(PerBitOptions(correct=("bias",)))


def _step_one_figures(evaluator, reuse: bool) -> tuple[list, list[str]]:
    """Figures of LeNet-5's one-layer candidates conv2 at k 2, 8 and fc2 at k 3, scored with or
    without prefix reuse, and the layers each ``predict_after`` call ran from."""
    from weightshare.dse.sensitivity import one_layer_candidates

    calls: list[str] = []
    backend = evaluator.backend
    run_after = type(backend).predict_after
    backend.predict_after = lambda split, layer: (
        calls.append(layer) or run_after(backend, split, layer)
    )
    evaluator.prefix_reuse = reuse
    try:
        results = map(evaluator.evaluate, one_layer_candidates({"conv2": (2, 8), "fc2": (3,)}))
        figures = [
            (r.key, r.correct, r.top5, r.kl, r.flip, r.cross_entropy, r.bits_coded) for r in results
        ]
    finally:
        del backend.predict_after
    return figures, calls


@pytest.fixture(scope="module")
def lenet5_evaluators(search_split, calibration):
    """LeNet-5 evaluators on 300 search images: plain k-means, --clustering weighted, and
    --correct bias, one model each."""
    from weightshare.dse.evaluator import Evaluator
    from weightshare.networks import get_network
    from weightshare.networks.checkpoints import BASELINE_DIR, load_into
    from weightshare.networks.datasets import Split

    spec = get_network("lenet5_fashionmnist")
    split = Split("search", search_split.images[:300], search_split.labels[:300])
    out = {}
    for name, options in (
        ("kmeans", None),
        ("weighted", PerBitOptions(clustering="weighted")),
        ("bias", PerBitOptions(correct=("bias",))),
    ):
        model = load_into(spec.build(), BASELINE_DIR / "lenet5_fashionmnist.pt")
        backend = PyTorchBackend(model, spec.input_size, threads=1, batch_size=96)
        calibrator = None if options is None else Calibrator(backend, options, calibration)
        out[name] = Evaluator(backend, {"search": split}, calibrator=calibrator)
    return out


def test_weighted_clustering_alone_keeps_prefix_reuse_with_the_same_figures(lenet5_evaluators):
    weighted = lenet5_evaluators["weighted"]
    assert not weighted.calibrator.corrects
    full, no_calls = _step_one_figures(weighted, reuse=False)
    reused, calls = _step_one_figures(weighted, reuse=True)
    assert reused == full and no_calls == []
    # every one-layer candidate ran from its layer on, part by part (300 images: 3 parts)
    assert calls == ["conv2"] * 6 + ["fc2"] * 3
    # and the clustering was the weighted one: other shared values than plain k-means
    plain, _ = _step_one_figures(lenet5_evaluators["kmeans"], reuse=True)
    assert [f[3] for f in plain] != [f[3] for f in full]


def test_a_correction_turns_prefix_reuse_off(lenet5_evaluators):
    corrected = lenet5_evaluators["bias"]
    assert corrected.calibrator.corrects
    _, calls = _step_one_figures(corrected, reuse=True)
    assert calls == []
