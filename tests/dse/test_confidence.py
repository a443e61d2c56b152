"""The ``--confirm-margin`` rule (weightshare/dse/confidence.py) and its effect on an exploration
with the numpy backend (tests/dse/fake_backend.py)."""

import csv
import dataclasses
import math

import pytest

from tests.dse.fake_backend import NAME, FakeFactory
from weightshare.dse import confidence, report
from weightshare.dse.driver import Driver, ExploreConfig
from weightshare.dse.executor import LocalExecutor
from weightshare.dse.space import Candidate
from weightshare.dse.trials import TrialStore

SCALE = 0.05  # 250 search images; the whole search split (5,000) confirms


def test_the_standard_error_bound_is_the_square_root_of_flips_over_images():
    assert confidence.se_bound(0.25, 16) == 0.125
    assert confidence.se_bound(0.0, 5000) == 0.0
    assert confidence.se_bound(0.02, 5000) == 0.002
    assert confidence.se_bound(math.nan, 4) == 0.5  # unmeasured flips: the worst case, 1


def test_a_score_passes_when_accuracy_less_z_standard_errors_meets_the_target():
    # se = sqrt(0.25 / 16) = 0.125: Z = 2 asks for 0.25 above the target
    assert confidence.required_accuracy(0.5, 0.25, 16, 2.0) == 0.75
    assert confidence.passes(0.75, 0.5, 0.25, 16, 2.0)
    assert not confidence.passes(0.74, 0.5, 0.25, 16, 2.0)
    assert confidence.passes(0.74, 0.5, 0.25, 16, 1.0)


def test_no_margin_is_the_plain_target_whatever_the_flips():
    assert confidence.required_accuracy(0.88, math.nan, 5000, 0.0) == 0.88
    assert confidence.passes(0.88, 0.88, math.nan, 5000, 0.0)
    assert not confidence.passes(0.8798, 0.88, 0.3, 5000, 0.0)


def test_the_margin_is_in_the_study_identity_only_when_used():
    plain = ExploreConfig(k_grid=(4,))
    assert "confirm_margin" not in plain.identity()
    assert ExploreConfig(k_grid=(4,), confirm_margin=1.5).identity()["confirm_margin"] == 1.5


@pytest.fixture(scope="module")
def executor():
    return LocalExecutor(FakeFactory(SCALE))


def _explore(tmp_path, executor, z: float):
    tmp_path.mkdir()
    config = ExploreConfig(k_grid=(4, 16, 64), n_trials=0, max_final=2, confirm_margin=z)
    settings = {"network": NAME, "dataset_scale": SCALE, **config.identity()}
    driver = Driver(config, TrialStore(f"sqlite:///{tmp_path / 'study.db'}", settings), executor)
    return driver, driver.run()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, executor):
    """The same exploration with Z = 0 and Z = 1: {z: (driver, outcome)}."""
    tmp = tmp_path_factory.mktemp("margin")
    return {z: _explore(tmp / f"z{z:g}", executor, z) for z in (0.0, 1.0)}


def test_a_margin_refuses_the_point_that_clears_the_target_by_less_than_its_error(runs):
    plain_driver, plain = runs[0.0]
    driver, margin = runs[1.0]
    target = plain_driver.full_target
    assert driver.full_target == target
    edge = plain.final[plain.best.candidate.key()]["search_full"]
    se = math.sqrt(edge.flip / edge.n_images)
    # Z = 0 accepts its best point; Z = 1 refuses that very score
    assert edge.n_images == 5000 and edge.accuracy >= target
    assert edge.accuracy - se < target
    assert plain_driver.meets_full_target(edge) and not driver.meets_full_target(edge)
    # with the margin the best point clears the target by a standard error, and is larger
    best = margin.final[margin.best.candidate.key()]["search_full"]
    assert best.accuracy - math.sqrt(best.flip / best.n_images) >= target
    assert driver.size_bytes(best) > plain_driver.size_bytes(edge)
    assert margin.best.candidate != plain.best.candidate
    # every point of the reported front passes with the margin
    for key in margin.final:
        full = margin.final[key]["search_full"]
        assert full.accuracy - math.sqrt(full.flip / full.n_images) >= target


def _full_split_rows(driver, outcome, out) -> dict[str, dict]:
    """trials.csv's whole-search-split rows of candidates (not fp32), by candidate key."""
    out.mkdir()
    doc = report.results(driver, outcome, network=NAME, backend=NAME, settings={}, wall_seconds=1.0)
    report.write(out, doc, driver, outcome)
    with (out / "trials.csv").open() as fh:
        rows = csv.DictReader(fh)
        return {
            Candidate.parse(r["k"]).key(): r
            for r in rows
            if r["split"] == "search_full" and r["phase"] != "baseline"
        }


def test_passes_search_full_and_feasible_use_the_margin_of_the_confirmation(runs, tmp_path):
    plain_driver, plain = runs[0.0]
    driver, margin = runs[1.0]
    scaled = plain.best
    key = scaled.candidate.key()
    edge = plain.final[key]["search_full"]  # above the target, below it plus one se
    # results.json: that whole-split score passes without the margin, fails with it
    with_edge = dataclasses.replace(margin, final={key: {"search_full": edge}})
    assert report.point(plain_driver, plain, scaled)["passes_search_full"] is True
    assert report.point(driver, with_edge, scaled)["passes_search_full"] is False
    # the holdout's verdict is the plain target's whatever the margin
    held = plain.final[key]["holdout"]
    assert report.passes(driver, margin, held) is report.passes(plain_driver, plain, held)
    assert report.passes(driver, margin, held) is (
        held.accuracy >= 0.99 * plain.baseline["holdout"].accuracy
    )
    # trials.csv: both studies confirmed the edge candidate; `feasible` is each one's verdict
    plain_rows = _full_split_rows(plain_driver, plain, tmp_path / "z0")
    margin_rows = _full_split_rows(driver, margin, tmp_path / "z1")
    assert plain_rows[key]["feasible"] == "True" and margin_rows[key]["feasible"] == "False"
    assert float(margin_rows[key]["accuracy"]) == edge.accuracy >= driver.full_target
    for z, rows in ((0.0, plain_rows), (1.0, margin_rows)):
        for r in rows.values():
            bar = confidence.required_accuracy(
                plain_driver.full_target, float(r["flip"]), int(r["n_images"]), z
            )
            whole = r["images_scored"] == r["n_images"]
            assert r["feasible"] == str(whole and float(r["accuracy"]) >= bar), (z, r["k"])
