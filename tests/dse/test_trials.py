"""The trial store on a real SQLite study: Optuna's heartbeat tells a dead driver's trials from
a live one's, and importing the module leaves Optuna's logging alone."""

import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from tests.conftest import ROOT
from weightshare.dse.trials import Claim, TrialStore

BEAT, GRACE = 1, 4  # seconds


def _store(tmp_path) -> TrialStore:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    return TrialStore(url, {"network": "test"}, heartbeat_interval=BEAT, grace_period=GRACE)


def _state(store: TrialStore, trial) -> TrialState:
    return store.storage.get_trial(trial._trial_id).state


def test_a_live_drivers_running_trial_is_never_failed_as_stale(tmp_path):
    live, other = _store(tmp_path), _store(tmp_path)  # two drivers sharing one study
    try:
        trial = live.ask("search")
        time.sleep(GRACE + 2)  # longer than the grace: only the beats keep it alive
        other.fail_stale("search")
        assert _state(other, trial) == TrialState.RUNNING
        live.release(Claim("search", trial))  # the live driver can still finish it
        assert _state(other, trial) == TrialState.FAIL
    finally:
        live.close()
        other.close()


def test_a_trial_whose_driver_stopped_beating_is_failed_after_the_grace_only(tmp_path):
    dead, rerun = _store(tmp_path), _store(tmp_path)
    try:
        trial = dead.ask("search")
        dead.heartbeat.close()  # the beats stop, as when its process is killed
        rerun.fail_stale("search")
        assert _state(rerun, trial) == TrialState.RUNNING  # within the grace: maybe alive
        deadline = time.monotonic() + 60
        while _state(rerun, trial) == TrialState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.5)
            rerun.fail_stale("search")
        assert _state(rerun, trial) == TrialState.FAIL
    finally:
        dead.close()
        rerun.close()


@pytest.mark.parametrize("module", ["weightshare.dse.trials", "weightshare.dse.driver"])
def test_importing_the_store_leaves_optunas_logging_alone(module):
    code = (
        "import logging, optuna\n"
        "before = (optuna.logging.get_verbosity(), logging.getLogger('optuna').level)\n"
        f"import {module}\n"
        "after = (optuna.logging.get_verbosity(), logging.getLogger('optuna').level)\n"
        "assert before == after, (before, after)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
