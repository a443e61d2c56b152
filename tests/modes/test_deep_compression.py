"""--mode deep_compression end to end on a short schedule: the file decodes to what was scored."""

from __future__ import annotations

import json

import pytest

from tests.conftest import one_line_error, run_main
from weightshare.codecs import decode_model


@pytest.mark.slow
def test_pipeline_writes_a_file_that_scores_what_it_reported(tmp_path):
    out = tmp_path / "dc"
    proc = run_main(
        "--mode", "deep_compression", "--network_dataset", "lenet5_fashionmnist",
        "--prune-steps", "1", "--retrain-epochs", "1", "--finetune-centroids", "1",
        "--train-images", "512", "--threads", "1", "--log_file", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "deep_compression.json").read_text())
    data = (out / "model.wsz").read_bytes()
    assert doc["table"]["total"]["file_bytes_pqh"] == len(data)
    assert doc["table"]["total"]["ratio_pqh"] == 4 * 61706 / len(data)
    assert doc["decoded_equals_encoded"] is True
    assert doc["accuracy"]["decoded_file"] == doc["accuracy"]["shared_finetuned"]
    kept = {r["layer"]: r["kept"] for r in doc["table"]["layers"]}
    assert kept["fc1.weight"] == round(0.08 * 48000) / 48000
    assert kept["conv1.weight"] == (150 - round(0.34 * 150)) / 150
    decoded = decode_model(data)
    assert {e.codec for e in decoded.manifest.tensors} == {"sparse_shared", "raw"}
    assert int((decoded.state["fc1.weight"] != 0).sum()) == round(0.08 * 48000)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--coder", "fixed"], "--coder must be an entropy coder"),
        (["--fc-bits", "0"], "--fc-bits must be"),
        (["--network_dataset", "resnet20_fashionmnist"], "--sparsity is needed for"),
        (["--sparsity", ""], "--sparsity must be a float in [0, 1) or KEY=F,KEY=F"),
    ],
)
def test_bad_flags_end_in_one_error_line(tmp_path, flags, message):
    proc = run_main("--mode", "deep_compression", "--log_file", str(tmp_path), *flags)
    assert message in one_line_error(proc)
