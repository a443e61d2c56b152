"""The container, for real: a Docker engine (started when none runs), the image built (on the
offline base when the registry does not answer), a short LeNet-5 exploration in it writing to a
host directory, and a rerun that resumes the study without evaluating anything again.
Also: hadolint on the recipe and the runner's usage message."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
NETWORK = "lenet5_fashionmnist"
FLAGS = ["--n-trials", "4", "--dataset_scale", "0.05", "--k-grid", "4,16", "--threads", "1"]


def test_dockerfile_passes_hadolint():
    proc = subprocess.run(
        [str(HADOLINT), "docker/Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_run_docker_script_is_valid_bash_and_explains_its_usage():
    assert subprocess.run(["bash", "-n", "run_docker.sh"], cwd=ROOT).returncode == 0
    proc = subprocess.run(["bash", "run_docker.sh"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "usage: " in proc.stderr


@pytest.fixture(scope="module")
def engine():
    """A Docker engine that answers; one started here is stopped afterwards."""
    env = {**os.environ, "DOCKER": DOCKER}
    proc = subprocess.run(
        ["bash", "scripts/docker_engine.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if proc.returncode != 0:
        pytest.skip(f"no Docker engine can run here: {proc.stderr.strip().splitlines()[-1]}")
    pid = proc.stdout.strip()
    yield
    if pid:
        subprocess.run(["kill", pid], check=False)
        for _ in range(30):
            if subprocess.run(["kill", "-0", pid], capture_output=True).returncode != 0:
                break
            time.sleep(1)


def _run_docker(runs: Path, name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER": DOCKER, "WEIGHTSHARE_RUNS_DIR": str(runs)}
    env["WEIGHTSHARE_CONTAINER"] = name
    try:
        return subprocess.run(
            ["bash", "run_docker.sh", NETWORK, *FLAGS],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=2400,
            env=env,
        )
    finally:
        subprocess.run([DOCKER, "rm", "-f", name], capture_output=True, check=False)


def _evaluations(db: Path) -> list[tuple[int, str]]:
    """(trial id, state) of every trial stored in the SQLite study, in id order."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT trial_id, state FROM trials ORDER BY trial_id").fetchall()


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_run_docker_explores_lenet5_and_a_rerun_resumes(engine, tmp_path, figures):
    runs = tmp_path / "runs"
    name = f"weightshare-test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    first = _run_docker(runs, name)
    first_s = time.monotonic() - started
    assert first.returncode in (0, 3), first.stdout[-3000:] + first.stderr[-3000:]
    out = runs / NETWORK
    result = json.loads((out / "results.json").read_text())
    assert result["network"] == NETWORK and result["evaluations"] > 0
    assert (out / "study.db").stat().st_uid == os.getuid()
    trials = _evaluations(out / "study.db")
    assert trials and all(state == "COMPLETE" for _, state in trials)

    started = time.monotonic()
    second = _run_docker(runs, name)
    second_s = time.monotonic() - started
    assert second.returncode == first.returncode, second.stdout[-3000:] + second.stderr[-3000:]
    again = json.loads((out / "results.json").read_text())
    assert _evaluations(out / "study.db") == trials  # nothing evaluated (or lost) again
    assert again["evaluations"] == result["evaluations"]
    assert again["best"] == result["best"]
    figures(
        f"docker: first run {first_s:.0f} s (build included), rerun {second_s:.0f} s, "
        f"{len(trials)} trials, {result['evaluations']} evaluations, status {result['status']}"
    )
    shutil.rmtree(runs, ignore_errors=True)
