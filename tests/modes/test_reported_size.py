"""Every point an exploration reports has ``size_bytes`` equal to the bytes ``--mode encode``
writes for it (the manifest and the unclustered tensors included), and the search minimised
that same figure: also with ``--correct bias,bn``, whose corrected biases and BatchNorm
statistics the file stores (same lengths, other checksums, so another deflated manifest), and
with ``--prune-grid`` (sparse layers), whose decoded file, ``--mode evaluate`` and ``--mode
export`` score what the exploration reported."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from tests.conftest import run_main
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.codecs import decode_model
from weightshare.modes import encode
from weightshare.modes.encode import EncodeConfig
from weightshare.networks import get_network
from weightshare.networks.datasets import load_split

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


@pytest.mark.slow
def test_a_prune_grid_point_encodes_to_its_size_and_decodes_to_its_accuracy(tmp_path):
    out = tmp_path / "run"
    proc = run_main(
        "--mode", "exploration", "--network_dataset", "lenet5_fashionmnist",
        "--log_file", str(out), "--dataset_scale", "0.05", "--workers", "0", "--threads", "1",
        "--k-grid", "4,16", "--prune-grid", "0,0.5,0.8", "--n-trials", "4",
        "--population-size", "4",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["prune_grid"] == [0.0, 0.5, 0.8]
    best = doc["best"]
    assert set(best["sparsity_per_layer"]) == set(best["k_per_layer"])
    pruned = {n for n, s in best["sparsity_per_layer"].items() if s > 0}
    assert pruned  # the joint search's best prunes (seeded: the same every run)
    pareto_csv = {int(r["trial"]): r for r in csv.DictReader((out / "pareto.csv").open())}
    for point in doc["pareto"]:
        model_file = tmp_path / f"t{point['trial']}.wsz"
        encode.run(EncodeConfig(out, trial=point["trial"], out=model_file))
        assert model_file.stat().st_size == point["size_bytes"] == point["size_bytes_coded"]
        row = pareto_csv[point["trial"]]
        assert row["sparsity"] == ";".join(
            f"{n}={s}" for n, s in point["sparsity_per_layer"].items()
        )
    # the best file: sparse layers stored as sparse_shared, decoded model scores as reported
    best_file = tmp_path / "best.wsz"
    encode.run(EncodeConfig(out, out=best_file))
    assert best_file.stat().st_size == best["size_bytes"]
    decoded = decode_model(best_file.read_bytes())
    codecs = {e.name: e.codec for e in decoded.manifest.tensors}
    assert {n for n, c in codecs.items() if c == "sparse_shared"} == {f"{n}.weight" for n in pruned}
    for name in pruned:  # exactly the magnitude-pruned fraction is zero (no weight is 0 fp32)
        weight = decoded.state[f"{name}.weight"]
        removed = round(best["sparsity_per_layer"][name] * weight.size)
        assert int((weight == 0).sum()) == removed
    pt_file = tmp_path / "best.pt"
    done = run_main("--mode", "decode", str(best_file), "--out", str(pt_file))
    assert done.returncode == 0, done.stderr[-2000:]
    spec = get_network("lenet5_fashionmnist")
    model = spec.build()
    model.load_state_dict(torch.load(pt_file, map_location="cpu", weights_only=True))
    backend = PyTorchBackend(model, spec.input_size, threads=1)
    assert backend.evaluate(load_split("holdout")).top1 == best["accuracy_holdout"]
    assert backend.evaluate(load_split("search")).top1 == best["accuracy_search_full"]
    # --mode evaluate and --mode export take the point too and score what was reported
    evaluated = tmp_path / "evaluated"
    done = run_main(
        "--mode", "evaluate", "--network_dataset", "lenet5_fashionmnist", "--threads", "1",
        "--k-per-layer", str(out / "results.json"), "--log_file", str(evaluated),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    evaluation = json.loads((evaluated / "evaluation.json").read_text())
    assert evaluation["candidate"]["accuracy_holdout"] == best["accuracy_holdout"]
    assert evaluation["candidate"]["accuracy_search"] == best["accuracy_search_full"]
    assert {r["name"]: r["sparsity"] for r in evaluation["layers"] if r["k"]} == (
        best["sparsity_per_layer"]
    )
    done = run_main(
        "--mode", "export", "--network_dataset", "lenet5_fashionmnist", "--threads", "1",
        "--log_file", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    exported = json.loads((out / "export" / "export.json").read_text())
    assert exported["sparsity_per_layer"] == {
        n: s for n, s in best["sparsity_per_layer"].items() if s
    }
    assert exported["accuracy_search"] == exported["accuracy_search_onnx"]
    assert exported["accuracy_search"] == best["accuracy_search_full"]
