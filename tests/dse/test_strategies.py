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
