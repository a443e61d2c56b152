"""The exhaustive map's pure functions (bench/bench_exhaustive.py), exact values on tiny inputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from bench import bench_exhaustive as ex
from tests.conftest import ROOT, one_line_error
from weightshare.errors import UserError

# baselines/baselines.json
LENET300_SHA256 = "3c1417c2531909a3031c1f825c08d9cb909ada1737b21cd6e6c0a1c92a54b0e5"


def test_se_is_the_confidence_bound_per_candidate():
    # se_bound(flip / n, n) = sqrt(flips) / n
    assert ex.se(np.array([0, 100, 400, 2500]), 10_000).tolist() == [0.0, 0.001, 0.002, 0.005]


def test_margins_in_se_and_the_fp32_decisions_at_infinity():
    out = ex.margins(
        np.array([9000, 8830, 8790, 8860]), np.array([0, 100, 400, 2500]), 10_000, 0.88
    )
    assert out[0] == math.inf
    assert out[1:].tolist() == pytest.approx([3.0, -0.5, 1.2])
    # no flip below the target (a target above fp32's accuracy): -inf
    assert ex.margins(np.array([9000]), np.array([0]), 10_000, 0.95).tolist() == [-math.inf]


RATIOS = np.array([1.0, 5.0, 10.0, 8.0])
CORRECT = np.array([9000, 8830, 8790, 8860])  # 90.0, 88.3, 87.9, 88.6 %
FLIPS = np.array([0, 100, 400, 2500])  # se 0, 0.1, 0.2, 0.5 points: margins inf, 3, -0.5, 1.2


@pytest.mark.parametrize(("z", "expected"), [(0, 3), (1, 3), (2, 1), (2.5, 1), (4, 0)])
def test_pick_is_the_largest_ratio_clearing_z_se(z, expected):
    assert ex.pick(RATIOS, CORRECT, FLIPS, 10_000, 0.88, z) == expected


def test_pick_none_and_ties():
    assert ex.pick(RATIOS, CORRECT, FLIPS, 10_000, 0.95, 0) is None
    ratios = np.array([2.0, 2.0, 1.0])
    assert ex.pick(ratios, np.array([9, 9, 9]), np.array([0, 0, 0]), 10, 0.5, 0) == 0


def test_halves_are_seeded_halves():
    masks = ex.halves(10, 3, seed=0)
    assert masks.shape == (3, 10)
    assert masks.sum(axis=1).tolist() == [5, 5, 5]
    assert np.array_equal(masks, ex.halves(10, 3, seed=0))


def test_halving_pass_rates_on_a_hand_worked_split():
    # 4 images, fp32 right on the first three. c1 (ratio 8) is right where fp32 is wrong and
    # wrong on image 2; c2 (ratio 4) is wrong on images 0 and 3.
    fp32 = np.array([True, True, True, False])
    correct = np.array(
        [[True, True, True, False], [True, True, False, True], [False, True, True, False]]
    )
    flipped = correct != fp32  # each wrong/right change is a top-1 change here
    masks = np.array(
        [
            [True, False, False, True],  # A = {0, 3}: c1 1.0, se 0.5 -> Z=0 picks c1, fails B
            [False, True, True, False],  # A = {1, 2}: c2 picked for both Z, 0/2 on B: fails
            [True, True, False, False],  # A = {0, 1}: c1 picked (no flip), 1/2 on B: passes
        ]
    )
    rates = ex.halving_pass_rates(np.array([1.0, 8.0, 4.0]), correct, flipped, fp32, [0, 2], masks)
    assert rates.tolist() == pytest.approx([1 / 3, 2 / 3])


def test_smallest_z():
    assert ex.smallest_z([0, 1, 2], [0.5, 0.95, 0.99], 0.9) == 1
    assert ex.smallest_z([0, 1, 2], [0.5, 0.95, 0.99], 1.0) is None


def test_staircase_lists_each_pick_with_its_z_range():
    # margins of the ratios 10, 8, 8 (tie: the lower index first), 5, 1
    ratios = np.array([8.0, 10.0, 5.0, 1.0, 8.0])
    margin = np.array([0.5, -1.0, 2.0, math.inf, 1.5])
    assert ex.staircase(ratios, margin) == [
        (1, -math.inf, -1.0),
        (0, -1.0, 0.5),
        (4, 0.5, 1.5),
        (2, 1.5, 2.0),
        (3, 2.0, math.inf),
    ]
    for z in (-2.0, 0.0, 0.5, 0.7, 1.5, 1.9, 2.5):  # the same picks as pick() at those Z
        (index,) = [i for i, low, high in ex.staircase(ratios, margin) if low < z <= high]
        assert index == int(np.argmax(np.where(margin >= z, ratios, -np.inf)))


def test_common_steps_put_several_staircases_on_one_axis():
    a = [(5, -math.inf, 1.0), (2, 1.0, math.inf)]
    b = [(7, -math.inf, 0.5), (3, 0.5, 2.0), (1, 2.0, math.inf)]
    assert ex.common_steps([a, b]) == [
        (-math.inf, 0.5, (5, 7)),
        (0.5, 1.0, (5, 3)),
        (1.0, 2.0, (2, 3)),
        (2.0, math.inf, (2, 1)),
    ]


def test_band_counts_count_the_holdout_failures_per_band():
    margins = np.array([0.2, 0.7, 0.7, 2.5, math.inf, -1.0])
    holdout = np.array([False, True, False, True, True, False])
    assert ex.band_counts(margins, holdout, (0, 1, 3, math.inf)) == [
        (0, 1, 3, 2),
        (1, 3, 1, 0),
        (3, math.inf, 1, 0),
    ]


def test_pack_and_unpack_bits():
    rows = np.array([[True, False, False, False, False, False, False, False, True]])
    packed = ex.pack(rows)
    assert packed.tolist() == [[128, 128]]
    assert np.array_equal(ex.unpack(packed, 9), rows)


def test_candidates_are_every_combination_with_fp32_dropped():
    keys = [c.key() for c in ex.candidates({"a": [0, 2], "b": [0, 3]})]
    assert keys == ["fp32", "b=3", "a=2", "a=2,b=3"]


def test_build_map_matches_the_evaluator_on_a_one_k_grid():
    """The real LeNet-300-100 and splits: 2^3 candidates, per-image rows that add up to the
    evaluator's own counts, fp32's row equal to the baseline's (90.54 % / 89.86 %)."""
    from weightshare.dse.space import Candidate
    from weightshare.modes.loading import EvaluatorFactory
    from weightshare.networks.checkpoints import BASELINE_DIR

    network = "lenet300_fashionmnist"
    data = ex.build_map(network, 0.1, seed=0, threads=1, grid=(2,))
    assert data["keys"].tolist() == [
        "fp32",
        "fc3=2",
        "fc2=2",
        "fc2=2,fc3=2",
        "fc1=2",
        "fc1=2,fc3=2",
        "fc1=2,fc2=2",
        "fc1=2,fc2=2,fc3=2",
    ]
    assert data["correct_search_full"].shape == (8, 625)  # 5,000 bits packed
    assert data["n"].tolist() == [5000, 5000] and int(data["n_search"]) == 500
    assert data["ratio_coded"][0] == 1.0
    fp32_search = ex.unpack(data["fp32_search_full"][None], 5000)[0]
    fp32_holdout = ex.unpack(data["fp32_holdout"][None], 5000)[0]
    assert (int(fp32_search.sum()), int(fp32_holdout.sum())) == (4527, 4493)
    correct = ex.unpack(data["correct_holdout"], 5000)
    flips = ex.unpack(data["flip_holdout"], 5000)
    assert np.array_equal(correct[0], fp32_holdout) and not flips[0].any()
    factory = EvaluatorFactory(network, str(BASELINE_DIR / f"{network}.pt"), None, 0.1, 1)
    result = factory().evaluate(Candidate.parse("fc2=2,fc3=2"), "holdout")
    assert int(correct[3].sum()) == result.correct
    assert int(flips[3].sum()) == round(result.flip * 5000)
    assert data["size_bytes"][3] == result.file_bytes
    assert json.loads(str(data["provenance"])) == ex.provenance(network, 0.1, 0, (2,))


def test_provenance_names_what_the_map_is_built_from():
    assert ex.provenance("lenet300_fashionmnist", 0.1, 3, (2, 4)) == {
        "map_version": 1,
        "network": "lenet300_fashionmnist",
        "dataset_scale": 0.1,
        "seed": 3,
        "k_grid": [2, 4],
        "checkpoint_sha256": LENET300_SHA256,
        "manifest_coding": 2,
    }


def _tiny_map(path, record: dict | None) -> None:
    """A 2-candidate map over 3 search / 2 holdout images, as build_map stores one."""
    rows = {"search_full": [[1, 0, 1], [0, 0, 1]], "holdout": [[1, 1], [0, 1]]}
    data = {"keys": np.array(["fp32", "fc3=2"]), "n": np.array([3, 2]), "n_search": np.array(1)}
    for s, bits in rows.items():
        data[f"correct_{s}"] = ex.pack(np.array(bits, bool))
        data[f"flip_{s}"] = ex.pack(np.array(bits, bool) != np.array(bits[0], bool))
        data[f"fp32_{s}"] = ex.pack(np.array(bits[:1], bool))[0]
    if record is not None:
        data["provenance"] = np.array(json.dumps(record))
    np.savez_compressed(path, **data)


def test_a_map_built_from_the_same_settings_loads(tmp_path):
    expected = ex.provenance("lenet300_fashionmnist", 0.1, 0, (2,))
    _tiny_map(tmp_path / "m.npz", expected)
    data = ex.load_map(tmp_path / "m.npz", expected)
    assert "provenance" not in data
    assert data["correct_search_full"].tolist() == [[True, False, True], [False, False, True]]
    assert data["flip_holdout"].tolist() == [[False, False], [True, False]]
    assert data["fp32_holdout"].tolist() == [True, True]


def test_a_map_built_from_other_settings_or_none_recorded_is_refused(tmp_path):
    expected = ex.provenance("lenet300_fashionmnist", 0.1, 0, (2,))
    path = tmp_path / "m.npz"
    advice = f": delete {path} to rebuild it, or use another --out"
    _tiny_map(path, {**expected, "seed": 1})
    with pytest.raises(UserError) as err:
        ex.load_map(path, expected)
    assert str(err.value) == f"{path} was built with seed=1 but this run has seed=0{advice}"
    _tiny_map(path, {**expected, "map_version": 0, "checkpoint_sha256": "00"})
    with pytest.raises(UserError) as err:
        ex.load_map(path, expected)
    assert str(err.value) == (
        f"{path} was built with map_version=0 but this run has map_version=1 (and 1 more "
        f"differ){advice}"
    )
    _tiny_map(path, None)
    with pytest.raises(UserError) as err:
        ex.load_map(path, expected)
    assert str(err.value) == f"{path} records no provenance (built before map version 1){advice}"


def _bench(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/bench_exhaustive.py", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_script_refuses_a_stale_map_and_a_bad_grid_in_one_line(tmp_path):
    expected = ex.provenance("lenet300_fashionmnist", 0.1, 0)
    path = tmp_path / "lenet300_fashionmnist@0.1+seed0.npz"
    _tiny_map(path, {**expected, "checkpoint_sha256": "00"})
    assert one_line_error(_bench("--out", str(tmp_path))) == (
        f"error: {path} was built with checkpoint_sha256='00' but this run has "
        f"checkpoint_sha256={LENET300_SHA256!r}: delete {path} to rebuild it, or use another --out"
    )
    assert one_line_error(_bench("--k-grid", "2,x")) == (
        "error: --k-grid must be comma-separated ints, e.g. 2,4,8,16; got '2,x'"
    )
