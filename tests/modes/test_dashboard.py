"""--mode dashboard: optuna-dashboard serves a real exploration's study on 127.0.0.1; its JSON
API lists every phase and gives each trial the per-layer k, the split and its accuracy, the
sizes and the damage figures; Ctrl-C stops it (exit 0). Bad input is one line."""

from __future__ import annotations

import csv
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import ROOT, one_line_error, run_main

LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")  # LeNet-5's clustered layers


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dashboard") / "run"
    proc = run_main(
        "--mode",
        "exploration",
        "--workers",
        "0",
        "--threads",
        "1",
        "--dataset_scale",
        "0.02",
        "--k-grid",
        "4,16",
        "--n-trials",
        "2",
        "--population-size",
        "2",
        "--log_file",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def _params(trial: dict) -> dict:
    return {p["name"]: p["param_external_value"] for p in trial["params"]}


def _attrs(trial: dict) -> dict:
    return {a["key"]: a["value"] for a in trial["user_attrs"]}


def test_the_dashboard_serves_every_trial_with_its_k_split_accuracy_size_and_damage(
    run_dir, figures
):
    proc = subprocess.Popen(
        [
            sys.executable,
            "main.py",
            "--mode",
            "dashboard",
            "--log_file",
            str(run_dir),
            "--port",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"optuna-dashboard: (http://127\.0\.0\.1:\d+)/dashboard\n", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        base = match.group(1)
        studies = {
            s["study_name"]: s["study_id"] for s in _get(f"{base}/api/studies")["study_summaries"]
        }
        phases = {name.split("/", 1)[1] for name in studies if name.startswith("weightshare/")}
        assert {"baseline", "sensitivity", "knapsack", "search", "final"} <= phases

        rows = list(csv.DictReader((run_dir / "trials.csv").open()))
        served = {}
        for phase in phases:
            detail = _get(f"{base}/api/studies/{studies['weightshare/' + phase]}")
            assert detail["objective_names"] == ["size_bytes", "accuracy"]
            for trial in detail["trials"]:
                if trial["state"] == "Complete":
                    served[trial["trial_id"]] = (phase, trial)
        assert sorted(served) == sorted(int(r["trial"]) for r in rows)  # every trial, no other
        results = json.loads((run_dir / "results.json").read_text())
        for row in rows:
            phase, trial = served[int(row["trial"])]
            attrs = _attrs(trial)
            assert attrs["phase"] == phase == row["phase"]
            assert float(attrs[f"accuracy_{attrs['split']}"]) == float(attrs["accuracy"])
            assert float(attrs["size_bytes"]) == trial["values"][0]
            # a search trial confirmed on the whole search split is told that accuracy
            told = attrs["confirmed_accuracy"]
            assert trial["values"][1] == float(attrs["accuracy"] if told == "null" else told)
            for damage in ("kl", "flip", "cross_entropy"):
                assert damage in attrs
            params = _params(trial)
            if phase == "sensitivity":  # step 1: one layer at one k
                assert set(json.loads(attrs["bits_fixed"])) == {params["layer"]}
                assert int(params["k"]) in (4, 16)
            else:
                assert set(params) == {f"k:{layer}" for layer in LAYERS}
        best = results["best"]
        phase, trial = served[best["trial"]]
        k_map = {name: int(value) for name, value in _params(trial).items()}
        assert k_map == {f"k:{layer}": best["k_per_layer"].get(layer, 0) for layer in LAYERS}
        assert float(_attrs(trial)["accuracy_search"]) == best["accuracy_search"]
        figures(f"dashboard at {base}: {len(served)} trials over {len(phases)} phases found")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert out.endswith("dashboard stopped\n")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--port", "70000"],
            "error: --port must be an int in [0, 65535]; got 70000",
        ),
        (
            ["--study-name", "nope"],
            "error: --storage sqlite:///{db} holds no study named 'nope' "
            "(give the --study-name of the exploration)",
        ),
    ],
)
def test_bad_dashboard_input_is_one_line(run_dir, args, message):
    line = one_line_error(run_main("--mode", "dashboard", "--log_file", str(run_dir), *args))
    assert line == message.format(db=(run_dir / "study.db").resolve())


def test_a_directory_without_a_study_is_refused_in_one_line(tmp_path):
    line = one_line_error(run_main("--mode", "dashboard", "--log_file", str(tmp_path)))
    assert line == (
        f"error: --log_file {tmp_path} holds no study (neither study.db nor a results.json naming "
        "its --storage): give an exploration's run directory, or --storage URL"
    )
    missing = tmp_path / "none.db"
    line = one_line_error(run_main("--mode", "dashboard", "--storage", f"sqlite:///{missing}"))
    assert line == f"error: --storage sqlite:///{missing}: no such file {missing}"
    assert not missing.exists()
    line = one_line_error(run_main("--mode", "dashboard"))
    assert line == (
        "error: --mode dashboard needs --log_file DIR (an exploration's run directory) or "
        "--storage URL; got neither"
    )


def test_a_port_in_use_is_one_line(run_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_main("--mode", "dashboard", "--log_file", str(run_dir), "--port", str(port))
    line = one_line_error(proc)
    assert line == (
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use): pick another --port"
    )
