"""The driver with the in-process executor, on the numpy backend (tests/dse/fake_backend.py).

No framework is imported here: the real backends run the driver end to end in tests/modes.
"""

import dataclasses
import json

import pytest

from tests.dse.fake_backend import NAME, FakeFactory
from weightshare.dse.driver import Driver, ExploreConfig, pareto_front
from weightshare.dse.executor import LocalExecutor
from weightshare.dse.space import Candidate
from weightshare.dse.trials import TrialStore
from weightshare.errors import UserError

SCALE = 0.05  # 250 search images: fast, and the whole-split confirmation still runs
CONFIG = ExploreConfig(k_grid=(4, 16, 64), n_trials=12, population_size=4, max_final=2)


@pytest.fixture(scope="module")
def executor():
    return LocalExecutor(FakeFactory(SCALE))


def _settings(**extra):
    return {"network": NAME, "dataset_scale": SCALE, **CONFIG.identity(), **extra}


def _run(tmp_path, executor, config=CONFIG, settings=None):
    store = TrialStore(f"sqlite:///{tmp_path / 'study.db'}", settings or _settings())
    driver = Driver(config, store, executor)
    return driver, driver.run()


def test_two_step_finds_a_point_that_meets_the_target_on_the_whole_search_split(tmp_path, executor):
    driver, outcome = _run(tmp_path, executor)
    assert outcome.best is not None and not outcome.interrupted
    key = outcome.best.candidate.key()
    full = outcome.final[key]["search_full"]
    assert (
        full.n_images == 5000 and full.accuracy >= 0.99 * outcome.baseline["search_full"].accuracy
    )
    assert outcome.final[key]["holdout"].n_images == 5000
    assert driver.layout.ratio_layers(outcome.best.bits_fixed) > 2.0
    phases = {r.phase for r in driver.store.records()}
    assert {"baseline", "sensitivity", "knapsack", "polish", "search", "final"} <= phases
    # step 1: every layer alone at every k of its grid (every layer has over 64 weights)
    one_layer = [r for r in driver.store.records("sensitivity")]
    assert len(one_layer) == len(executor.evaluator.layers) * len(CONFIG.k_grid)
    assert all(len(r.candidate.k) == 1 for r in one_layer)


def test_each_reported_point_is_the_evaluation_that_measured_it_not_a_later_reuse(
    tmp_path, executor
):
    # the search phase is seeded with the polish's best: its first trial reuses that result,
    # and the report credits the trial (and phase) that evaluated the point
    driver, outcome = _run(tmp_path, executor)
    records = [r for r in driver.store.records() if r.split == "search"]
    first = {}
    for r in records:
        first.setdefault(r.candidate.key(), r)
    reused = {r.candidate.key() for r in records if r.reused}
    assert outcome.best.candidate.key() in reused  # a point measured once and reused later
    for point in outcome.pareto:
        assert not point.reused, point.trial_id
        assert point.trial_id == first[point.candidate.key()].trial_id
    assert outcome.best.phase in {"knapsack", "polish"}


def test_rerun_resumes_without_evaluating_anything_again(tmp_path, executor):
    _, first = _run(tmp_path, executor)
    driver, second = _run(tmp_path, executor)
    assert driver.evaluations == 0
    assert second.evaluations == first.evaluations
    assert second.best.candidate == first.best.candidate


def test_a_rerun_with_other_settings_is_refused_naming_the_setting(tmp_path, executor):
    _run(tmp_path, executor, config=ExploreConfig(k_grid=(4, 16), n_trials=0, max_final=1))
    other = _settings(dataset_scale=0.5, k_grid=[4, 16])
    with pytest.raises(
        UserError, match=r"was made with dataset_scale=0.05 but this run has dataset_scale=0.5"
    ):
        TrialStore(f"sqlite:///{tmp_path / 'study.db'}", other)


def test_a_prune_grid_of_zero_alone_is_the_study_without_the_grid(tmp_path, executor):
    # the identity a study made without --prune-grid has always recorded
    assert CONFIG.identity() == {
        "optimization": "two_step_optimization",
        "with_local_optimization": True,
        "accuracy_ratio": 0.99,
        "k_grid": [4, 16, 64],
        "skip_layers": None,
        "size_model": "coded",
        "seed": 0,
        "population_size": 4,
    }
    for zero in ((0.0,), (0,)):
        config = dataclasses.replace(CONFIG, prune_grid=zero)
        assert config.prune_grid == () and config.identity() == CONFIG.identity()
    assert dataclasses.replace(CONFIG, prune_grid=(0.0, 0.5)).prune_grid == (0.0, 0.5)
    # a study made without the flag resumes with --prune-grid 0: nothing is evaluated again
    plain = ExploreConfig(k_grid=(4, 16), n_trials=0, max_final=1)
    zero = ExploreConfig(k_grid=(4, 16), n_trials=0, max_final=1, prune_grid=(0.0,))
    assert zero.identity() == plain.identity()
    settings = {"network": NAME, "dataset_scale": SCALE, **plain.identity()}
    _, first = _run(tmp_path, executor, plain, settings)
    driver, again = _run(tmp_path, executor, zero, settings)
    assert driver.evaluations == 0 and again.evaluations == first.evaluations
    assert again.best.candidate == first.best.candidate


def test_an_impossible_target_reports_the_closest_points(tmp_path, executor):
    config = ExploreConfig(k_grid=(2,), accuracy_ratio=1.0, n_trials=3, population_size=2)
    _, outcome = _run(tmp_path, executor, config, _settings(k_grid=[2], accuracy_ratio=1.0))
    assert outcome.best is None and outcome.pareto == []
    assert 1 <= len(outcome.closest) <= 5
    accs = [r.accuracy for r in outcome.closest]
    assert accs == sorted(accs, reverse=True)


def test_pareto_front_keeps_non_dominated_points_sorted_by_size():
    class R:
        def __init__(self, key, size, acc):
            self.candidate = type("C", (), {"key": lambda s, k=key: k})()
            self.size, self.accuracy = size, acc

    pts = [R("a", 10, 0.90), R("b", 5, 0.91), R("c", 20, 0.95), R("d", 30, 0.93), R("b", 5, 0.2)]
    front = pareto_front(pts, lambda r: r.size)
    assert [(r.size, r.accuracy) for r in front] == [(5, 0.91), (20, 0.95)]
    assert len(pareto_front(pts, lambda r: r.size, dominated=True)) == 4


def test_settings_are_stored_with_the_study(tmp_path):
    store = TrialStore(f"sqlite:///{tmp_path / 'study.db'}", _settings())
    assert store.study("baseline").user_attrs["settings"] == json.loads(json.dumps(_settings()))
    with pytest.raises(UserError, match="--storage must be a URL"):
        TrialStore("study.db", _settings())
    with pytest.raises(UserError, match="cannot open --storage"):
        TrialStore("nosuchdb://user@host/x", _settings())


def test_a_confirmation_left_without_its_search_score_is_not_reported(tmp_path, executor):
    """A run interrupted between storing a whole-split confirmation and telling its trial."""
    driver, first = _run(tmp_path, executor)
    orphan = Candidate.of({"fc3": 48})  # not in the grid: never scored on the scaled split
    result = executor.evaluator.evaluate(orphan, "search_full")
    driver.store.add("confirm", orphan, result, size_bytes=1.0, target=driver.full_target)
    _, again = _run(tmp_path, executor)
    assert again.best.candidate == first.best.candidate
    assert orphan.key() not in {r.candidate.key() for r in again.pareto}


PRUNED = ExploreConfig(
    k_grid=(4, 16), prune_grid=(0.0, 0.5), n_trials=6, population_size=4, max_final=1
)


def test_the_prune_grid_searches_k_and_sparsity_pairs(tmp_path, executor):
    settings = {"network": NAME, "dataset_scale": SCALE, **PRUNED.identity()}
    driver, outcome = _run(tmp_path, executor, PRUNED, settings)
    assert PRUNED.identity()["prune_grid"] == [0.0, 0.5]
    assert "prune_grid" not in CONFIG.identity()  # off: the study identity of today
    layers = [layer.name for layer in executor.evaluator.layers]
    # step 1: every layer alone at every (k, sparsity) pair, sizes measured per pair
    one_layer = {r.candidate.key(): r for r in driver.store.records("sensitivity")}
    assert sorted(one_layer) == sorted(
        f"{n}={v}" for n in layers for v in (4, 16, "4@0.5", "16@0.5")
    )
    for n in layers:  # half the weights pruned: fewer coded bits at the same k
        assert one_layer[f"{n}=16@0.5"].bits_coded[n] < one_layer[f"{n}=16"].bits_coded[n]
    assert outcome.best is not None
    # the same command resumes (mixed int / "k@s" choices in the stored search trials)
    again, resumed = _run(tmp_path, executor, PRUNED, settings)
    assert again.evaluations == 0 and resumed.best.candidate == outcome.best.candidate
    # a rerun with the grid off is another study
    with pytest.raises(UserError, match="prune_grid"):
        TrialStore(f"sqlite:///{tmp_path / 'study.db'}", {**settings, "prune_grid": None})
