"""Claims in the trial store: a (candidate, split) is evaluated by one driver, the others reuse
it or wait for it; a dead driver's claim is claimed again; the search budget counts every
driver's trials. On a real SQLite study and, when scripts/postgres.sh runs, a real PostgreSQL
one (where two drivers racing for the same pairs claim each exactly once)."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from optuna.trial import TrialState

from weightshare.dse.claim_lock import advisory_key, is_postgresql
from weightshare.dse.space import Candidate
from weightshare.dse.trials import Busy, Claim, Record, TrialStore
from weightshare.types import EvalResult

BEAT, GRACE = 1, 3  # seconds
POSTGRES = os.environ.get("WEIGHTSHARE_TEST_POSTGRES")
needs_postgres = pytest.mark.skipif(
    not POSTGRES, reason="needs the server of scripts/postgres.sh (scripts/test.sh starts it)"
)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=needs_postgres)],
)
def opener(request, tmp_path):
    """Opens stores ("drivers") on one fresh study of the parametrized storage."""
    url = f"sqlite:///{tmp_path / 'study.db'}" if request.param == "sqlite" else POSTGRES
    name = f"claims-{uuid.uuid4().hex[:12]}"
    opened = []

    def open_store(**kw) -> TrialStore:
        store = TrialStore(
            url, {"network": "test"}, name, heartbeat_interval=BEAT, grace_period=GRACE, **kw
        )
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def _result(cand: Candidate, split: str = "search", n_scored: int | None = None) -> EvalResult:
    return EvalResult(
        key=cand.key(),
        split=split,
        accuracy=0.75,
        top5=1.0,
        n_images=100,
        correct=75 if n_scored is None else round(0.75 * n_scored),
        seconds=0.5,
        bits_fixed={"fc1": 640},
        bits_coded={"fc1": 512.0},
        n_scored=n_scored,
    )


def _finish(store: TrialStore, claim: Claim, cand: Candidate, **kw) -> Record:
    return store.complete(claim, _result(cand, **kw), size_bytes=100.0, target=0.7)


def _state(store: TrialStore, trial_id: int) -> TrialState:
    return store.storage.get_trial(trial_id).state


CAND = Candidate.of({"fc1": 4})


def test_a_pair_is_evaluated_by_one_driver_and_reused_by_the_other(opener):
    a, b = opener(), opener()
    claim = a.claim("knapsack", CAND, "search")
    assert isinstance(claim, Claim)
    busy = b.claim("knapsack", CAND, "search")
    assert busy == Busy("knapsack", claim.trial._trial_id, mine=False)
    assert a.claim("knapsack", CAND, "search") == Busy("knapsack", claim.trial._trial_id, True)
    record = _finish(a, claim, CAND)
    b.wait(busy)  # returns at once: told
    assert b.claim("knapsack", CAND, "search") == record
    assert b.lookup(CAND, "search") == record
    # another split is another evaluation
    assert isinstance(b.claim("confirm", CAND, "search_full"), Claim)
    trial = a.storage.get_trial(record.trial_id)
    assert trial.user_attrs["driver"] == a.driver and trial.user_attrs["phase"] == "knapsack"
    assert trial.user_attrs["accuracy_search"] == 0.75 and trial.values == [100.0, 0.75]


def test_an_early_stopped_result_serves_only_pass_fail(opener):
    a = opener()
    stopped = _finish(a, a.claim("polish", CAND, "search", partial=True), CAND, n_scored=40)
    assert stopped.stopped_early
    assert a.claim("confirm", CAND, "search", partial=True) == stopped
    full = a.claim("confirm", CAND, "search")  # a score to the end is another evaluation
    assert isinstance(full, Claim)
    assert a.lookup(CAND, "search", partial=True) == stopped
    record = _finish(a, full, CAND)
    assert a.lookup(CAND, "search") == record and a.lookup(CAND, "search", partial=True) == record


def test_a_dead_drivers_claim_is_claimed_again_after_the_grace(opener):
    dead, alive = opener(), opener()
    start = time.monotonic()  # before the claim's first beat: its last beat comes later
    claim = dead.claim("sensitivity", CAND, "search")
    dead.heartbeat.close()  # its beats stop, as when its process is killed
    busy = alive.claim("sensitivity", CAND, "search")
    assert isinstance(busy, Busy) and not busy.mine
    alive.wait(busy)  # until its claim is found stale and failed
    waited = time.monotonic() - start
    assert _state(alive, claim.trial._trial_id) == TrialState.FAIL
    # stale only once the grace has passed since the last beat (0.5 s of slack)
    assert GRACE - 0.5 <= waited < GRACE + 30, waited
    again = alive.claim("sensitivity", CAND, "search")
    assert isinstance(again, Claim) and again.trial._trial_id != claim.trial._trial_id


def test_a_driver_that_stops_frees_its_claims_at_once(opener):
    stopping, other = opener(), opener()
    claim = stopping.claim("knapsack", CAND, "search")
    trial = stopping.ask("search")
    stopping.close()
    assert _state(other, claim.trial._trial_id) == TrialState.FAIL
    assert _state(other, trial._trial_id) == TrialState.FAIL
    assert isinstance(other.claim("knapsack", CAND, "search"), Claim)


def test_the_sole_driver_fails_the_trials_an_earlier_one_left_running(opener):
    dead = opener()
    claim = dead.claim("knapsack", CAND, "search")
    dead.heartbeat.close()
    sole = opener(sole_driver=True)
    assert _state(sole, claim.trial._trial_id) == TrialState.FAIL
    assert isinstance(sole.claim("knapsack", CAND, "search"), Claim)


def test_the_search_budget_counts_every_drivers_complete_and_running_trials(opener):
    a, b = opener(), opener()
    first, second = a.ask_within("search", 3), a.ask_within("search", 3)
    third = b.ask_within("search", 3)
    assert None not in (first, second, third)
    assert b.ask_within("search", 3) is None and a.ask_within("search", 3) is None
    assert sorted(b.others_running("search")) == [first._trial_id, second._trial_id]
    a.release(Claim("search", first))  # a lost trial frees its place
    assert b.ask_within("search", 3) is not None
    assert a.ask_within("search", 3) is None


@needs_postgres
def test_two_drivers_racing_for_the_same_pairs_claim_each_exactly_once(figures):
    name = f"race-{uuid.uuid4().hex[:12]}"
    cands = [Candidate.of({"fc1": k, "fc2": j}) for k in range(2, 8) for j in range(2, 7)]
    outcome: dict[str, dict[str, int]] = {}
    start = threading.Barrier(2)

    def drive(label: str) -> None:
        store = TrialStore(POSTGRES, {"network": "test"}, name)
        seen = {"claimed": 0, "busy": 0, "reused": 0}
        try:
            start.wait()
            for cand in cands:
                got = store.claim("sensitivity", cand, "search")
                if isinstance(got, Claim):
                    seen["claimed"] += 1
                    _finish(store, got, cand)
                else:
                    seen["busy" if isinstance(got, Busy) else "reused"] += 1
        finally:
            store.close()
        outcome[label] = seen

    threads = [threading.Thread(target=drive, args=(label,)) for label in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    check = TrialStore(POSTGRES, {"network": "test"}, name)
    try:
        keys = [r.candidate.key() for r in check.records("sensitivity")]
    finally:
        check.close()
    figures(f"{len(cands)} pairs; per driver: {outcome}")
    assert sorted(keys) == sorted(c.key() for c in cands)  # each once: none lost, none twice
    assert outcome["a"]["claimed"] + outcome["b"]["claimed"] == len(cands)
    assert all(sum(seen.values()) == len(cands) for seen in outcome.values())


def test_the_advisory_key_is_a_stable_signed_64_bit_int_per_study():
    # sha256 of the name: the same key on every machine and Python (no hash randomisation)
    assert advisory_key("weightshare") == -1019239890210359599
    assert advisory_key("weightshare") != advisory_key("weightshare2")
    assert is_postgresql("postgresql://u@h:5432/db") and is_postgresql("postgresql+psycopg://x")
    assert not is_postgresql("sqlite:///x.db") and not is_postgresql("mysql://u@h/db")


def test_a_live_drivers_claim_failed_as_stale_keeps_its_result(opener):
    """A driver whose beats did not reach the storage for the grace period finds its claim
    failed by another driver when it finishes: the result is stored in a trial of its own."""
    slow, other = opener(), opener()
    claim = slow.claim("knapsack", CAND, "search")
    other.storage.set_trial_state_values(claim.trial._trial_id, TrialState.FAIL)  # as stale
    record = _finish(slow, claim, CAND)
    assert record.trial_id != claim.trial._trial_id
    assert _state(other, claim.trial._trial_id) == TrialState.FAIL
    assert other.claim("knapsack", CAND, "search") == record
    trial = other.storage.get_trial(record.trial_id)
    assert trial.state == TrialState.COMPLETE and trial.values == [100.0, 0.75]
    assert trial.user_attrs["key"] == CAND.key() and trial.user_attrs["driver"] == slow.driver
    assert trial.system_attrs["constraints:accuracy"] == pytest.approx(-0.05)
    assert slow.others_running() == [] and other.others_running() == []
