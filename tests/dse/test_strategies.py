"""Search strategies are plug-ins: named once in a registry, run by a driver that knows none."""

import inspect

import pytest

from tests.dse.fake_backend import FakeFactory
from weightshare.dse import driver as driver_module
from weightshare.dse.driver import Driver, ExploreConfig
from weightshare.dse.executor import LocalExecutor
from weightshare.dse.space import Candidate
from weightshare.dse.strategies import OPTIMIZATIONS, STRATEGIES, Strategy
from weightshare.dse.trials import TrialStore
from weightshare.modes.exploration import OPTIMIZATIONS as CLI_OPTIMIZATIONS


def test_the_registry_names_the_four_strategies_once_for_driver_and_cli():
    assert OPTIMIZATIONS == ("two_step_optimization", "nsga2", "tpe", "paper")
    assert CLI_OPTIMIZATIONS is OPTIMIZATIONS
    members = [n for n in dir(Strategy) if not n.startswith("_")]
    for strategy in STRATEGIES.values():
        assert all(hasattr(strategy, n) for n in members)
    # the driver's source names no strategy
    source = inspect.getsource(driver_module)
    assert not any(f'"{name}"' in source for name in OPTIMIZATIONS)


class OnlyUniform:
    """A strategy in a few lines: every layer at k = 256, then k = 32."""

    default_trials = 0
    default_k_grid = None
    needs_step_one = False

    def explore(self, explorer):
        for k in (256, 32):
            (record,) = explorer.evaluate(
                "uniform", [Candidate.of(dict.fromkeys(explorer.grids, k))], target=explorer.target
            )
            explorer.passes(record)


def test_a_new_strategy_is_one_class_and_its_registration(tmp_path, monkeypatch):
    monkeypatch.setitem(STRATEGIES, "uniform", OnlyUniform())
    factory = FakeFactory(0.05)
    config = ExploreConfig(optimization="uniform", k_grid=(32, 256), max_final=1)
    store = TrialStore(f"sqlite:///{tmp_path / 'study.db'}", config.identity())
    driver = Driver(config, store, LocalExecutor(factory))
    outcome = driver.run()
    uniform = store.records("uniform")
    names = sorted(driver.layout.n_weights)
    assert [r.candidate.key() for r in uniform] == [
        ",".join(f"{n}={k}" for n in names) for k in (256, 32)
    ]
    assert outcome.best is not None
    assert outcome.best.candidate in {r.candidate for r in uniform}
    assert config.search_trials() == 0


@pytest.mark.parametrize("name", OPTIMIZATIONS)
def test_default_budgets_come_from_the_strategy(name):
    expected = 10_000 if name == "paper" else 100
    assert ExploreConfig(optimization=name, k_grid=(4,)).search_trials() == expected


class Recording(Driver):
    """The driver, noting each evaluation request as (phase, number of candidates)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests = []

    def evaluate(self, phase, candidates, *args, **kwargs):
        self.requests.append((phase, len(candidates)))
        return super().evaluate(phase, candidates, *args, **kwargs)


class LastFirst(LocalExecutor):
    """Two workers whose last-submitted task always finishes first."""

    def wait(self):
        task = self._queue.pop()
        return task, self.evaluator.evaluate(task.candidate, task.split, task.stop_below)


def _two_step(tmp_path, executor):
    config = ExploreConfig(k_grid=(4, 16, 64), n_trials=0, max_final=2)
    tmp_path.mkdir()
    store = TrialStore(f"sqlite:///{tmp_path / 'study.db'}", config.identity())
    driver = Recording(config, store, executor)
    outcome = driver.run()
    by_phase = {
        phase: sorted(r.candidate.key() for r in store.records(phase))
        for phase in ("knapsack", "polish", "confirm")
    }
    return driver, outcome, by_phase


@pytest.fixture(scope="module")
def factory():
    return FakeFactory(0.05)


def test_two_step_asks_one_knapsack_budget_and_one_polish_move_per_worker(tmp_path, factory):
    one, one_out, _ = _two_step(tmp_path / "one", LocalExecutor(factory))
    two, two_out, phases = _two_step(tmp_path / "two", LocalExecutor(factory, capacity=2))
    for phase in ("knapsack", "polish"):
        assert {n for p, n in one.requests if p == phase} == {1}
        sizes = [n for p, n in two.requests if p == phase]
        assert max(sizes) == 2 and len(sizes) < len([p for p, _ in one.requests if p == phase])
    # both widths find a point as small as the sequential search's
    assert two.size_bytes(two_out.best) <= one.size_bytes(one_out.best)
    assert phases["knapsack"] and phases["polish"]


def test_batched_two_step_decides_the_same_whatever_order_the_workers_finish_in(tmp_path, factory):
    fifo, fifo_out, fifo_phases = _two_step(tmp_path / "fifo", LocalExecutor(factory, capacity=2))
    lifo, lifo_out, lifo_phases = _two_step(tmp_path / "lifo", LastFirst(factory, capacity=2))
    assert lifo.requests == fifo.requests
    assert lifo_phases == fifo_phases
    assert lifo_out.best.candidate == fifo_out.best.candidate
    assert lifo.surrogate == fifo.surrogate
