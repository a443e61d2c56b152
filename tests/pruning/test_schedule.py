"""Per-round targets of the iterative prune/retrain schedule (linear and geometric)."""

from __future__ import annotations

import pytest

from weightshare.pruning.schedule import round_targets


def test_linear_prunes_equal_fractions_of_the_target_per_round():
    assert round_targets(0.8, 4) == pytest.approx([0.2, 0.4, 0.6, 0.8], abs=1e-15)


def test_geometric_shrinks_the_kept_fraction_by_the_same_factor_every_round():
    targets = round_targets(0.9375, 4, "geometric")  # kept 1/16 -> 1/2, 1/4, 1/8, 1/16
    assert targets == pytest.approx([0.5, 0.75, 0.875, 0.9375], abs=1e-15)
    kept = [1.0] + [1 - t for t in targets]
    assert [kept[i + 1] / kept[i] for i in range(4)] == pytest.approx([0.5] * 4, abs=1e-15)


def test_per_layer_targets_and_the_last_round_is_the_target_exactly():
    final = {"fc1.weight": 0.935, "conv1.weight": 0.0}
    targets = round_targets(final, 5, "geometric")
    assert targets[-1] == final
    assert [t["conv1.weight"] for t in targets] == [0.0] * 5
    assert targets[0]["fc1.weight"] == pytest.approx(1 - 0.065**0.2, abs=1e-15)
    fc1 = [t["fc1.weight"] for t in targets]
    assert fc1 == sorted(fc1) and len(set(fc1)) == 5
    assert round_targets(0.5, 1, "geometric") == [0.5]


def test_unknown_schedule_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown schedule 'cubic'"):
        round_targets(0.5, 2, "cubic")
