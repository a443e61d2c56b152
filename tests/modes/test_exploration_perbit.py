"""--mode exploration with the issue-10 options: recorded as part of the study's identity,
and the best point, encoded and decoded, predicts like the candidate the exploration scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import one_line_error, run_main
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.dse.correction import Calibrator, PerBitOptions
from weightshare.modes import decode, encode
from weightshare.modes.encode import EncodeConfig
from weightshare.modes.sharing import cluster_layers, shared_weights
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.datasets import Split, load_calibration

NETWORK = "lenet300_fashionmnist"
OPTIONS = ["--clustering", "weighted", "--correct", "bias", "--calibration-images", "64"]
COMMON = [
    "--mode",
    "exploration",
    "--network_dataset",
    NETWORK,
    "--dataset_scale",
    "0.05",
    "--threads",
    "1",
    "--workers",
    "0",
    "--k-grid",
    "2,4,8,16",
    "--n-trials",
    "6",
    "--population-size",
    "4",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exploration")
    proc = run_main(*COMMON, *OPTIONS, "--log_file", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_the_options_are_recorded_and_part_of_the_identity(run_dir):
    settings = json.loads((run_dir / "results.json").read_text())["settings"]
    assert settings["clustering"] == "weighted"
    assert settings["correct"] == ["bias"]
    assert settings["calibration_images"] == 64
    line = one_line_error(
        run_main(
            *COMMON, *OPTIONS[:2], "--correct", "bias,bn", *OPTIONS[4:], "--log_file", str(run_dir)
        )
    )
    assert "correct=['bias', 'bn']" in line


def test_the_encoded_best_point_predicts_like_the_scored_candidate(run_dir, search_split, tmp_path):
    results = json.loads((run_dir / "results.json").read_text())
    k_map = results["best"]["k_per_layer"]
    images = Split("search@200", search_split.images[:200], search_split.labels[:200])
    spec = get_network(NETWORK)
    backend = PyTorchBackend(
        load_into(spec.build(), BASELINE_DIR / f"{NETWORK}.pt"), spec.input_size, threads=1
    )
    options = PerBitOptions("weighted", ("bias",), 64)
    calibrator = Calibrator(backend, options, load_calibration(64))
    with shared_weights(
        backend, cluster_layers(backend, k_map, "layer", "best", calibrator.importance)
    ) as dense:
        calibrator.apply(backend, dense)
        expected = backend.predict(images)
    model_file = tmp_path / "model.wsz"
    encode.run(EncodeConfig(run_dir, out=model_file, threads=1))
    pt_file = tmp_path / "decoded.pt"
    decode.run(decode.DecodeConfig(model_file, pt_file))
    model = spec.build()
    model.load_state_dict(torch.load(pt_file, map_location="cpu", weights_only=True), strict=True)
    got = PyTorchBackend(model, spec.input_size, threads=1).predict(images)
    np.testing.assert_array_equal(got, expected)  # bit for bit


def test_onnx_runtime_refuses_the_options_before_the_study_exists(tmp_path):
    line = one_line_error(
        run_main(
            *COMMON, "--backend", "onnxruntime", "--correct", "bn", "--log_file", str(tmp_path)
        )
    )
    assert line == (
        "error: --correct bn needs gradients and activations, which the onnxruntime "
        "backend does not give; use --backend pytorch (or drop the option)"
    )
    assert not (tmp_path / "study.db").exists()  # the corrected command starts afresh
