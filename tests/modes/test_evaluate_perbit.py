"""``--mode evaluate`` with ``--clustering weighted`` and ``--correct`` (issue 10)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import one_line_error, run_main

COMMON = [
    "--mode",
    "evaluate",
    "--network_dataset",
    "lenet5_fashionmnist",
    "--dataset_scale",
    "0.05",
    "--threads",
    "1",
    "--k",
    "2",
]


def test_evaluate_and_export_apply_the_options(tmp_path):
    proc = run_main(
        *COMMON,
        "--clustering",
        "weighted",
        "--correct",
        "bn,bias",
        "--calibration-images",
        "64",
        "--log_file",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "evaluation.json").read_text())
    assert result["clustering"] == "weighted"
    assert result["correct"] == ["bias", "bn"]
    assert result["calibration_images"] == 64
    assert result["corrections"]["bias_skipped"] == []

    # --mode export applies the same options: the exported model scores what evaluate reported
    proc = run_main("--mode", "export", *COMMON[2:8], "--log_file", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = json.loads((tmp_path / "export" / "export.json").read_text())
    assert exported["clustering"] == "weighted" and exported["correct"] == ["bias", "bn"]
    assert exported["accuracy_search"] == result["candidate"]["accuracy_search"]


def test_bad_options_get_one_line():
    line = one_line_error(run_main(*COMMON, "--correct", "bias,xx"))
    assert line == "error: --correct must be none or a comma list of bias, bn; got 'bias,xx'"
    line = one_line_error(run_main(*COMMON, "--correct", "bn", "--calibration-images", "0"))
    assert line == "error: --calibration-images must be an int >= 1; got 0"


def test_onnx_runtime_refuses_weighted_clustering_naming_the_way_out():
    line = one_line_error(run_main(*COMMON, "--backend", "onnxruntime", "--clustering", "weighted"))
    assert line == (
        "error: --clustering weighted needs gradients and activations, which the onnxruntime "
        "backend does not give; use --backend pytorch (or drop the option)"
    )


def test_keras_weighted_clustering_shares_like_pytorch(tmp_path):
    """--clustering weighted on the TensorFlow backend (GradientTape importance,
    tests/backends/test_tf_keras.py) clusters LeNet-5's Keras twin as PyTorch clusters LeNet-5:
    the same weighted k-means result per layer (inertia to 1e-6 relative: the importances
    differ by float32 rounding only) and the same accuracy within 0.1 points (the cross-backend
    tolerance, tests/backends/test_cross_backend.py). --correct stays refused there."""
    pytest.importorskip("tensorflow")
    options = ["--clustering", "weighted", "--calibration-images", "256"]
    results = {}
    for backend in ("tensorflow", "pytorch"):
        out = tmp_path / backend
        proc = run_main(*COMMON, "--k", "4", "--backend", backend, *options, "--log_file", str(out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[backend] = json.loads((out / "evaluation.json").read_text())
    ours, theirs = results["tensorflow"], results["pytorch"]
    assert ours["backend"] == "tensorflow" and ours["clustering"] == "weighted"
    assert [x["name"] for x in ours["layers"]] == [x["name"] for x in theirs["layers"]]
    for a, b in zip(ours["layers"], theirs["layers"], strict=True):
        assert a["inertia"] == pytest.approx(b["inertia"], rel=1e-6), a["name"]
    for split in ("accuracy_search", "accuracy_holdout"):
        assert abs(ours["candidate"][split] - theirs["candidate"][split]) <= 0.001, split
    proc = run_main(*COMMON, "--backend", "tensorflow", "--correct", "bias")
    # the last line: TensorFlow's own start-up lines (absl, oneDNN) come before it on stderr
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: --correct bias needs gradients and activations, which the tensorflow backend "
        "does not give; use --backend pytorch (or drop the option)"
    )
