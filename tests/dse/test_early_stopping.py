"""Exact early stopping: a candidate stops being scored once it has failed for certain, and an
exploration that stops early reports exactly what full scoring reports."""

import numpy as np
import pytest

from tests.dse.fake_backend import FakeFactory
from weightshare.dse.driver import Driver, ExploreConfig
from weightshare.dse.executor import LocalExecutor
from weightshare.dse.space import Candidate
from weightshare.dse.trials import TrialStore

SCALE = 0.05  # 250 search images, scored in parts of 100, 100 and 50


@pytest.fixture(scope="module")
def factory():
    return FakeFactory(SCALE)


@pytest.fixture(scope="module")
def evaluator(factory):
    return factory()


def test_scoring_stops_after_the_part_from_which_the_target_is_out_of_reach(evaluator):
    assert [(a, b) for a, b, _ in evaluator.parts("search")] == [(0, 100), (100, 200), (200, 250)]
    names = [layer.name for layer in evaluator.layers]
    cand = Candidate.of({names[0]: 2, names[1]: 2})
    full = evaluator.evaluate(cand)
    assert full.images_scored == 250 and not full.stopped_early
    # a target above 1 is out of reach after the first part: (correct + 150) / 250 < 1.01
    stopped = evaluator.evaluate(cand, stop_below=1.01)
    assert (stopped.n_images, stopped.images_scored, stopped.stopped_early) == (250, 100, True)
    split = evaluator.splits["search"]
    backend = evaluator.backend
    backend.set_weights({n: evaluator.cache.get(n, 2).dequantize() for n in names[:2]})
    try:
        first = backend.predict(evaluator.parts("search")[0][2])
    finally:
        backend.restore()
    assert stopped.correct == int((first.argmax(axis=1) == split.labels[:100]).sum())
    assert stopped.accuracy == stopped.correct / 100
    # a target reachable to the end: scored whole, the same figures as without a target
    same = evaluator.evaluate(cand, stop_below=0.0)
    assert (same.accuracy, same.top5, same.kl, same.flip, same.cross_entropy) == (
        full.accuracy,
        full.top5,
        full.kl,
        full.flip,
        full.cross_entropy,
    )
    assert same.images_scored == 250


def test_a_certain_failure_never_looks_feasible(evaluator):
    cand = Candidate.of({layer.name: 2 for layer in evaluator.layers})
    for target in np.linspace(0.3, 0.95, 14):
        r = evaluator.evaluate(cand, stop_below=float(target))
        full = evaluator.evaluate(cand)
        assert (full.accuracy < target) == (r.accuracy < target)
        if r.stopped_early:
            assert full.accuracy < target


def _run(tmp_path, factory, early_stopping: bool):
    config = ExploreConfig(
        k_grid=(4, 16, 64),
        n_trials=12,
        population_size=4,
        max_final=2,
        early_stopping=early_stopping,
    )
    tmp_path.mkdir()
    store = TrialStore(f"sqlite:///{tmp_path / 'study.db'}", {"early_stopping": early_stopping})
    driver = Driver(config, store, LocalExecutor(factory))
    return driver, driver.run()


def _reported(driver, outcome):
    """Every figure the exploration reports about its points."""
    points = [
        (
            key,
            {split: (r.accuracy, r.top5, r.kl, r.n_images) for split, r in splits.items()},
            driver.size_bytes(splits["search"]),
        )
        for key, splits in outcome.final.items()
    ]
    return (
        outcome.best.candidate.key(),
        [r.candidate.key() for r in outcome.pareto],
        points,
        {s: r.accuracy for s, r in outcome.baseline.items()},
        driver.surrogate,
    )


def test_an_exploration_with_early_stopping_reports_exactly_what_full_scoring_does(
    tmp_path, factory
):
    full_driver, full = _run(tmp_path / "full", factory, early_stopping=False)
    es_driver, early = _run(tmp_path / "early", factory, early_stopping=True)
    assert _reported(es_driver, early) == _reported(full_driver, full)
    scored = [r for r in es_driver.store.records() if not r.reused]
    stopped = [r for r in scored if r.stopped_early]
    assert stopped and all(r.phase in ("polish", "confirm") for r in stopped)
    assert sum(r.images_scored for r in scored) < sum(r.n_images for r in scored)
    assert not any(r.stopped_early for r in full_driver.store.records())
