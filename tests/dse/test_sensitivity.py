import pytest

from weightshare.dse.sensitivity import Option, one_layer_candidates, paper_options, pareto_options
from weightshare.dse.space import FP32
from weightshare.dse.strategies.paper import PAPER_K_GRID


def test_one_layer_candidates_cover_every_layer_and_k():
    cands = one_layer_candidates({"a": (2, 4), "b": (8,)})
    assert [c.key() for c in cands] == ["a=2", "a=4", "b=8"]


def test_pareto_options_keep_the_measured_efficient_points_and_fp32():
    points = [
        Option(2, 100, 0.05),
        Option(4, 200, 0.008),
        Option(6, 260, 0.009),  # dominated: bigger and more damaging than k=4 (kept measured)
        Option(8, 300, 0.002),
        Option(16, 400, 0.002),  # not strictly better than k=8
        Option(32, 500, 0.0001),
    ]
    kept = pareto_options(points, fp32_bits=3200)
    assert [(o.k, o.bits, o.damage) for o in kept] == [
        (2, 100, 0.05),
        (4, 200, 0.008),
        (8, 300, 0.002),
        (32, 500, 0.0001),
        (FP32, 3200, 0.0),
    ]
    assert pareto_options([], fp32_bits=3200) == [Option(FP32, 3200, 0.0)]


def test_paper_options_keep_the_best_k_per_bit_width():
    accs = {"a": {2: 0.80, 3: 0.95, 4: 0.97, 5: 0.99, 6: 0.98, 8: 0.985}}
    kept, ratio = paper_options(accs, baseline=1.0, ratio=0.96)
    # 1 bit: k=2 fails; 2 bits: {3, 4} -> 4; 3 bits: {5, 6, 8} -> 5 (most accurate)
    assert kept == {"a": [4, 5]} and ratio == 0.96


def test_paper_options_relax_the_ratio_by_0_9_until_every_layer_has_a_k():
    accs = {"a": {4: 0.99}, "b": {4: 0.85}}
    kept, ratio = paper_options(accs, baseline=1.0, ratio=0.99)
    assert kept == {"a": [4], "b": [4]}
    assert ratio == pytest.approx(0.99 * 0.9 * 0.9)  # 0.85 > 0.8019, not > 0.891
    never, _ = paper_options({"c": {4: 0.1}}, baseline=1.0, ratio=0.99)
    assert never == {"c": [FP32]}


def test_paper_grid_is_the_seeds_81_values():
    assert len(PAPER_K_GRID) == 81
    assert PAPER_K_GRID[:5] == (2, 3, 4, 5, 6) and PAPER_K_GRID[-1] == 1024


def test_paper_options_keep_the_best_choice_per_bit_width_and_sparsity():
    # 3 and 4 share 2-bit indices; pruned choices compete only at their own sparsity
    accs = {"fc": {3: 0.97, 4: 0.98, "3@0.5": 0.975, "4@0.5": 0.97, "2@0.8": 0.95}}
    kept, ratio = paper_options(accs, baseline=1.0, ratio=0.96)
    assert kept == {"fc": [4, "3@0.5"]} and ratio == 0.96  # 2@0.8 fails the 0.96 filter


def test_one_layer_candidates_cover_every_pair():
    keys = [c.key() for c in one_layer_candidates({"fc": (4, "4@0.5")})]
    assert keys == ["fc=4", "fc=4@0.5"]
