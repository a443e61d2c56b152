"""The ``--confirm-margin`` rule (weightshare/dse/confidence.py) and its effect on an exploration
with the numpy backend (tests/dse/fake_backend.py)."""

import math

import pytest

from tests.dse.fake_backend import NAME, FakeFactory
from weightshare.dse import confidence
from weightshare.dse.driver import Driver, ExploreConfig
from weightshare.dse.executor import LocalExecutor
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


def test_a_margin_refuses_the_point_that_clears_the_target_by_less_than_its_error(
    tmp_path, executor
):
    plain_driver, plain = _explore(tmp_path / "z0", executor, 0.0)
    driver, margin = _explore(tmp_path / "z1", executor, 1.0)
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
