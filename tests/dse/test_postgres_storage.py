"""A study shared through a real PostgreSQL server (started by scripts/postgres.sh, which
scripts/test.sh runs): a second machine joining the same study re-evaluates nothing, and two
drivers running it at the same time split the work and agree on one report."""

import collections
import json
import os
import re
import subprocess
import sys
import uuid

import optuna
import pytest

from tests.conftest import ROOT, run_main

URL = os.environ.get("WEIGHTSHARE_TEST_POSTGRES")
pytestmark = pytest.mark.skipif(
    not URL, reason="needs the server of scripts/postgres.sh (scripts/test.sh starts it)"
)


def test_the_server_url_has_the_readmes_form():
    # postgresql://USER@HOST:PORT/DB, no driver spelled: SQLAlchemy picks psycopg 3 for it
    assert re.fullmatch(r"postgresql://\w+@[\d.]+:\d+/\w+", URL), URL


def _args(name: str, n_trials: int) -> list[str]:
    return [
        "--mode",
        "exploration",
        "--workers",
        "0",
        "--threads",
        "1",
        "--storage",
        URL,
        "--study-name",
        name,
        "--dataset_scale",
        "0.02",
        "--k-grid",
        "4,16",
        "--n-trials",
        str(n_trials),
        "--population-size",
        "2",
    ]


def test_two_machines_share_one_study_through_postgresql(tmp_path):
    name = f"test-{uuid.uuid4().hex[:12]}"
    args = _args(name, 4)
    first = run_main(*args, "--log_file", str(tmp_path / "machine-a"))
    assert first.returncode in (0, 3), first.stderr[-2000:]
    second = run_main(*args, "--log_file", str(tmp_path / "machine-b"))
    assert second.returncode == first.returncode, second.stderr[-2000:]
    a = json.loads((tmp_path / "machine-a" / "results.json").read_text())
    b = json.loads((tmp_path / "machine-b" / "results.json").read_text())
    assert a["evaluations"] > 0 and b["evaluations"] == a["evaluations"]
    assert b["settings"]["storage"] == URL
    assert not (tmp_path / "machine-b" / "study.db").exists()
    assert (a["best"] or {}).get("k_per_layer") == (b["best"] or {}).get("k_per_layer")


def _trials(name: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    """phase -> every trial of the study ``name`` in the server."""
    names = [s.study_name for s in optuna.get_all_study_summaries(URL)]
    return {
        n.split("/", 1)[1]: optuna.load_study(study_name=n, storage=URL).get_trials(deepcopy=False)
        for n in names
        if n.startswith(name + "/")
    }


def test_two_drivers_at_once_evaluate_each_point_once_and_agree_on_one_report(tmp_path, figures):
    name = f"two-{uuid.uuid4().hex[:12]}"
    n_trials = 6
    procs = {
        run: subprocess.Popen(
            [sys.executable, "main.py", *_args(name, n_trials), "--log_file", str(tmp_path / run)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in ("driver-a", "driver-b")
    }
    done = {run: proc.communicate(timeout=900) for run, proc in procs.items()}
    codes = {run: proc.returncode for run, proc in procs.items()}
    assert codes == {"driver-a": 0, "driver-b": 0}, (codes, done)
    a, b = (json.loads((tmp_path / run / "results.json").read_text()) for run in procs)

    trials = _trials(name)
    states = collections.Counter(t.state.name for ts in trials.values() for t in ts)
    assert states == {"COMPLETE": sum(len(ts) for ts in trials.values())}, states  # none lost
    done_trials = [(phase, t) for phase, ts in trials.items() for t in ts]
    evaluated = [(p, t) for p, t in done_trials if not t.user_attrs["reused"]]
    # no (candidate, split) evaluated twice: at most one evaluation to the end and one that
    # stopped early (a pass/fail check, scored to the end later where its accuracy is told)
    twice = collections.Counter(
        (
            t.user_attrs["key"],
            t.user_attrs["split"],
            t.user_attrs["n_scored"] < t.user_attrs["n_images"],
        )
        for _, t in evaluated
    )
    assert max(twice.values()) == 1, [k for k, n in twice.items() if n > 1]
    assert len(trials["search"]) == n_trials  # the budget counts both drivers' trials
    by_driver = collections.Counter(t.user_attrs["driver"] for _, t in evaluated)
    assert a["evaluations"] == b["evaluations"] == len(evaluated) == sum(by_driver.values())
    assert a["status"] == b["status"] and a["best"] == b["best"]
    assert a["pareto"] == b["pareto"] and a["pareto"]
    figures(
        f"\ntwo drivers, one study: {len(done_trials)} trials checked "
        f"({', '.join(f'{p} {len(ts)}' for p, ts in sorted(trials.items()))}), "
        f"{len(evaluated)} evaluations, none twice, none lost; evaluations per driver: "
        f"{sorted(by_driver.values(), reverse=True)}; both report best trial {a['best']['trial']} "
        f"and the same {len(a['pareto'])}-point front, {a['evaluations']} evaluations"
    )
