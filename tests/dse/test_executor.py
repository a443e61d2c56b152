"""Ray executor on real actors: results match the in-process executor, a killed worker's task
is retried on a fresh actor and nothing is lost. The actors hold the numpy backend
(tests/dse/fake_backend.py); the exploration on Ray workers with PyTorch runs in tests/modes."""

import os
import signal
import time

import pytest

from tests.dse.fake_backend import FakeFactory
from weightshare.dse import ray_runtime
from weightshare.dse.executor import LocalExecutor, RayExecutor, Task, run_all
from weightshare.dse.space import Candidate

FACTORY = FakeFactory(0.1)
TASKS = [Task(k, Candidate.of({"fc1": k, "fc2": 8})) for k in (2, 4, 8, 16, 32, 64)]


@pytest.fixture(scope="module")
def ray_started():
    import ray

    ray_runtime.start(None, 2)
    yield
    ray.shutdown()


def test_ray_results_equal_local_results(ray_started):
    local = run_all(LocalExecutor(FACTORY), TASKS)
    remote = RayExecutor(FACTORY, 2)
    try:
        got = run_all(remote, TASKS)
    finally:
        remote.close()
    assert got.keys() == local.keys()
    for tag, result in local.items():
        assert (got[tag].accuracy, got[tag].n_images, got[tag].key) == (
            result.accuracy,
            result.n_images,
            result.key,
        )
        assert got[tag].bits_coded == result.bits_coded


def test_a_killed_worker_has_its_task_retried_and_nothing_is_lost(ray_started):
    executor = RayExecutor(FACTORY, 2)
    try:
        executor.describe()  # actors are up
        victim = executor.pids()[0]
        for task in TASKS:
            executor.submit(task)
        os.kill(victim, signal.SIGKILL)
        done = {}
        deadline = time.monotonic() + 300
        while executor.pending() and time.monotonic() < deadline:
            task, result = executor.wait()
            done[task.tag] = result
        assert sorted(done) == sorted(t.tag for t in TASKS)
        assert all(not isinstance(r, Exception) for r in done.values())
        assert executor.replaced >= 1
        assert victim not in executor.pids()
    finally:
        executor.close()


def test_a_search_on_two_ray_workers_is_reproducible(ray_started, tmp_path):
    """Trials are told in ask order, so completion order cannot change the study."""
    from weightshare.dse.driver import Driver, ExploreConfig
    from weightshare.dse.trials import TrialStore

    config = ExploreConfig(k_grid=(4, 16, 64), n_trials=8, population_size=4, max_final=1)
    factory = FakeFactory(0.05)
    studies = []
    for run in ("a", "b"):
        store = TrialStore(f"sqlite:///{tmp_path / run}.db", {"run": "same"})
        executor = RayExecutor(factory, 2)
        try:
            Driver(config, store, executor).run()
        finally:
            executor.close()
        records = store.records()
        # the sampled phase in trial order; the others are stored as they finish (each one at
        # once, so a killed run keeps it): compare them as sets
        search = [(r.number, r.candidate.key(), r.accuracy) for r in records if r.phase == "search"]
        studies.append((search, sorted((r.phase, r.candidate.key(), r.split) for r in records)))
    assert studies[0] == studies[1]
    assert len(studies[0][0]) == 8
