"""--mode encode / decode with every issue-10 option: the decoded model predicts like the
evaluated candidate, image for image.

The candidate is built the way ``--mode evaluate`` builds it: a :class:`Calibrator` on the
pristine model (Fisher importance, mean input patches), Fisher-weighted :class:`ClusterCache`,
``set_weights``, bias correction and BatchNorm re-estimation. ResNet-20 (seeded random weights:
exactness needs no training) has bias-less convs followed by BatchNorm, so the file must carry
the corrected BatchNorm statistics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from weightshare.backends.pytorch import PyTorchBackend
from weightshare.dse.clustering import ClusterCache
from weightshare.dse.correction import Calibrator, PerBitOptions
from weightshare.modes import decode, encode
from weightshare.modes.encode import EncodeConfig
from weightshare.networks import get_network
from weightshare.networks.checkpoints import load_into
from weightshare.networks.datasets import Split, load_calibration

NETWORK = "resnet20_fashionmnist"
OPTIONS = PerBitOptions(clustering="weighted", correct=("bias", "bn"), calibration_images=64)
K = 4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("resnet20") / "resnet20_seed0.pt"
    torch.save(get_network(NETWORK).build().state_dict(), path)
    return path


def backend_of(path: Path) -> PyTorchBackend:
    spec = get_network(NETWORK)
    return PyTorchBackend(load_into(spec.build(), path), spec.input_size, threads=1)


def test_decoded_model_with_all_options_predicts_like_the_candidate(
    checkpoint, search_split, tmp_path
):
    images = Split("search@200", search_split.images[:200], search_split.labels[:200])
    backend = backend_of(checkpoint)
    calibrator = Calibrator(backend, OPTIONS, load_calibration(OPTIONS.calibration_images))
    names = [layer.name for layer in backend.layers()]
    cache = ClusterCache(
        {n: backend.get_weights(n) for n in names}, importance=calibrator.importance
    )
    shared = {n: cache.get(n, K) for n in names}
    dense = {n: sw.dequantize() for n, sw in shared.items()}
    backend.set_weights(dense)
    assert calibrator.apply(backend, dense) == {"bias_skipped": [], "bn_layers": 19}
    expected = backend.predict(images)
    backend.restore()
    plain = backend.predict(images)

    evaluation = {
        "network": NETWORK,
        "checkpoint": str(checkpoint),
        "granularity": "layer",
        "init": "best",
        **OPTIONS.as_dict(),
        "layers": [{"name": n, "k": K, "inertia": shared[n].inertia} for n in names],
    }
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    model_file = tmp_path / "model.wsz"
    result = encode.run(EncodeConfig(tmp_path, out=model_file, threads=1))
    assert result["clustering"] == "weighted" and result["correct"] == ["bias", "bn"]
    pt_file = tmp_path / "decoded.pt"
    decode.run(decode.DecodeConfig(model_file, pt_file))
    state = torch.load(pt_file, map_location="cpu", weights_only=True)
    decoded = backend_of(checkpoint)
    decoded.model.load_state_dict(state, strict=True)
    got = decoded.predict(images)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_array_equal(got, expected)  # bit for bit
    # the corrections are in the file: its BatchNorm statistics are not the checkpoint's
    pristine = torch.load(checkpoint, weights_only=True)
    assert not torch.equal(state["bn1.running_mean"], pristine["bn1.running_mean"])
    assert not np.array_equal(got, plain)
