"""Every point an exploration reports has ``size_bytes`` equal to the bytes ``--mode encode``
writes for it (the manifest and the unclustered tensors included), and the search minimised
that same figure: also with ``--correct bias,bn``, whose corrected biases and BatchNorm
statistics the file stores (same lengths, other checksums, so another deflated manifest)."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import run_main
from weightshare.modes import encode
from weightshare.modes.encode import EncodeConfig

# ResNet-20: its convs have no bias, so --correct bias shifts the BatchNorm after each (its
# running_mean), its fc has one; --correct bn re-estimates all 19 BatchNorms.
CASES = {
    "plain": ("lenet5_fashionmnist", ()),
    "corrected": (
        "resnet20_fashionmnist",
        ("--correct", "bias,bn", "--calibration-images", "64", "--threads", "1"),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_encode_writes_exactly_the_reported_size_of_every_point(tmp_path, case):
    network, options = CASES[case]
    out = tmp_path / "run"
    proc = run_main(
        "--mode", "exploration", "--network_dataset", network,
        "--log_file", str(out), "--dataset_scale", "0.05", "--workers", "0",
        "--optimization", "nsga2", "--with_local_optimization", "0",
        "--k-grid", "4,16,64", "--n-trials", "8", "--population-size", "4", *options,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"].get("correct", []) == (["bias", "bn"] if options else [])
    pareto_csv = {int(r["trial"]): r for r in csv.DictReader((out / "pareto.csv").open())}
    points = {p["trial"]: p for p in doc["pareto"]}
    assert doc["best"]["trial"] in points and len(points) >= 1
    for trial, point in points.items():
        model_file = tmp_path / f"t{trial}.wsz"
        encode.run(EncodeConfig(out, trial=trial, out=model_file))
        size = model_file.stat().st_size
        assert point["size_bytes"] == size == point["size_bytes_coded"], trial
        assert float(pareto_csv[trial]["size_bytes"]) == size
        fp32 = doc["original_bytes"]
        assert point["compression_ratio_model_coded"] == pytest.approx(fp32 / size)
    best_file = tmp_path / "best.wsz"
    encode.run(EncodeConfig(out, out=best_file))
    assert best_file.stat().st_size == doc["best"]["size_bytes"]
