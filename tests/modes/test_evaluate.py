"""``--mode evaluate --k-per-layer results.json``: an exploration's candidate evaluated again.

A real (small) exploration of LeNet-300-100 writes results.json; evaluate reads its best point,
or ``--trial N`` of its Pareto front, and scores the same candidate on the same search images
as the exploration did (same granularity, init and seed): the accuracy must be identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import one_line_error, run_main
from weightshare.errors import UserError
from weightshare.modes.evaluate import read_k_per_layer

NETWORK = ["--network_dataset", "lenet300_fashionmnist", "--dataset_scale", "0.05"]
COMMON = [*NETWORK, "--threads", "1"]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exploration")
    proc = run_main(
        "--mode",
        "exploration",
        *COMMON,
        "--workers",
        "0",
        "--k-grid",
        "2,4,8,16",
        "--n-trials",
        "10",
        "--population-size",
        "4",
        "--log_file",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "results.json"


def _evaluate(results: Path, out: Path, *extra: str) -> dict:
    proc = run_main(
        "--mode", "evaluate", *COMMON, "--k-per-layer", str(results), "--log_file", str(out), *extra
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "evaluation.json").read_text())


def _k_of(evaluation: dict) -> dict:
    return {row["name"]: row["k"] for row in evaluation["layers"] if row["k"] is not None}


@pytest.mark.slow
def test_best_point_and_a_pareto_trial_score_as_in_the_exploration(results, tmp_path):
    document = json.loads(results.read_text())
    best = document["best"]
    others = [p for p in document["pareto"] if p["trial"] != best["trial"]]
    assert others, "the exploration must leave a Pareto point besides the best"

    evaluation = _evaluate(results, tmp_path / "best")
    assert _k_of(evaluation) == best["k_per_layer"]
    assert evaluation["candidate"]["accuracy_search"] == best["accuracy_search"]
    assert evaluation["k_per_layer_source"] == {"file": str(results), "trial": best["trial"]}

    other = others[0]
    evaluation = _evaluate(results, tmp_path / "other", "--trial", str(other["trial"]))
    assert _k_of(evaluation) == other["k_per_layer"]
    assert evaluation["candidate"]["accuracy_search"] == other["accuracy_search"]
    assert evaluation["k_per_layer_source"] == {"file": str(results), "trial": other["trial"]}


@pytest.mark.slow
def test_a_trial_it_does_not_list_or_another_network_is_one_line(results, tmp_path):
    document = json.loads(results.read_text())
    listed = sorted({p["trial"] for key in ("pareto", "closest") for p in document[key]})
    missing = max(listed) + 1000
    line = one_line_error(
        run_main(
            "--mode", "evaluate", *COMMON, "--k-per-layer", str(results), "--trial", str(missing)
        )
    )
    assert line == (
        f"error: --trial {missing} is not listed in {results} (best, pareto, closest); "
        f"trials: {listed}"
    )
    line = one_line_error(run_main("--mode", "evaluate", "--k-per-layer", str(results)))
    assert line == (
        f"error: --k-per-layer {results} explored lenet300_fashionmnist; this run evaluates "
        "lenet5_fashionmnist (pass the same --network_dataset / --model)"
    )
    assert not (tmp_path / "evaluation.json").exists()


def test_plain_maps_and_results_files_are_told_apart(tmp_path):
    plain = tmp_path / "k.json"
    plain.write_text('{"fc1": 4, "fc2": 8}')
    assert read_k_per_layer(plain).k_per_layer == {"fc1": 4, "fc2": 8}
    assert read_k_per_layer(plain).trial is None
    with pytest.raises(UserError, match=r"--trial 3 picks a candidate of an exploration"):
        read_k_per_layer(plain, 3)
    document = {
        "network": "lenet300_fashionmnist",
        "status": "infeasible",
        "best": None,
        "pareto": [],
        "closest": [{"trial": 7, "k_per_layer": {"fc1": 2}}],
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    with pytest.raises(UserError, match=r"no best candidate \(status 'infeasible'.*N in \[7\]"):
        read_k_per_layer(path)
    picked = read_k_per_layer(path, 7)
    assert (picked.k_per_layer, picked.trial, picked.network) == (
        {"fc1": 2},
        7,
        "lenet300_fashionmnist",
    )
    document["closest"][0]["k_per_layer"] = {"fc1": 0}
    path.write_text(json.dumps(document))
    with pytest.raises(UserError, match=r"k of layer 'fc1' in .* must be an int in \[1, 65536\]"):
        read_k_per_layer(path, 7)


def test_a_prune_grid_point_gives_its_sparsity_per_layer(tmp_path):
    point = {
        "trial": 3,
        "k_per_layer": {"fc1": 16, "fc2": 4},
        "sparsity_per_layer": {"fc1": 0.8, "fc2": 0.0},
    }
    document = {"network": "lenet300_fashionmnist", "best": point, "pareto": [point]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    picked = read_k_per_layer(path)
    assert (picked.k_per_layer, picked.sparsity) == ({"fc1": 16, "fc2": 4}, {"fc1": 0.8})
    for bad, message in (
        ({"fc1": 1.0}, r"the sparsity of layer 'fc1' must be a number in \[0, 1\); got 1.0"),
        ({"fc3": 0.5}, r"sparsity_per_layer names 'fc3', which has no k"),
        ([0.5], r"sparsity_per_layer must be an object layer -> sparsity"),
    ):
        point["sparsity_per_layer"] = bad
        path.write_text(json.dumps(document))
        with pytest.raises(UserError, match=message):
            read_k_per_layer(path)
