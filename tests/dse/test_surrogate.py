"""The power-law map from summed one-layer KL to top-1 drop, and the budget bracket search."""

import math

import pytest

from weightshare.dse.surrogate import (
    GROWTH,
    PRIOR,
    RESOLUTION,
    PowerLaw,
    bracket,
    fit_power_law,
    next_budget,
    next_budgets,
)


def test_a_power_law_is_recovered_exactly_from_its_points():
    law = fit_power_law([(d, 0.3 * d**1.2) for d in (0.01, 0.02, 0.05, 0.1)])
    assert (law.a, law.b, law.n_points) == (pytest.approx(0.3), pytest.approx(1.2), 4)
    assert law.damage_for(law.drop(0.07)) == pytest.approx(0.07)


def test_points_without_log_information_are_left_out_and_the_prior_fills_in():
    assert fit_power_law([]) == PRIOR
    assert fit_power_law([(0.0, 0.01), (0.1, -0.002)]) == PRIOR
    # one usable point: the prior's slope through it
    one = fit_power_law([(0.05, 0.01), (0.1, 0.0)])
    assert (one.b, one.n_points) == (PRIOR.b, 1) and one.drop(0.05) == pytest.approx(0.01)


def test_the_slope_is_clipped_to_a_plausible_range():
    steep = fit_power_law([(0.01, 1e-6), (0.02, 1e-2)])
    assert steep.b == 2.0


def test_bracket_is_the_largest_pass_and_the_smallest_fail_above_it():
    assert bracket([]) == (0.0, math.inf)
    assert bracket([(0.1, True), (0.4, False), (0.2, True), (0.3, False), (0.05, False)]) == (
        0.2,
        0.3,
    )


def test_next_budget_expands_then_follows_the_map_inside_the_bracket_then_stops():
    law = PowerLaw(0.1, 1.0)  # allowed drop 0.01 -> damage 0.1
    assert next_budget([], law, 0.01) == pytest.approx(0.1)
    # everything passed so far: grow
    assert next_budget([(0.1, True)], law, 0.01) == pytest.approx(0.1 * GROWTH)
    # everything failed so far: shrink
    assert next_budget([(0.1, False)], law, 0.01) == pytest.approx(0.1 / GROWTH)
    # the map's answer lies inside the bracket: take it
    assert next_budget([(0.05, True), (0.2, False)], law, 0.01) == pytest.approx(0.1)
    # outside: the bracket's geometric middle
    assert next_budget([(0.2, True), (0.8, False)], law, 0.01) == pytest.approx(0.4)
    # bracket narrower than the resolution: done
    assert next_budget([(0.1, True), (0.1 * RESOLUTION, False)], law, 0.01) is None


def test_next_budgets_add_budgets_that_split_the_widest_gaps_of_the_bracket():
    law = PowerLaw(0.1, 1.0)  # allowed drop 0.01 -> damage 0.1
    # one worker: next_budget's answer alone
    for outcomes in ([], [(0.1, True)], [(0.05, True), (0.2, False)]):
        assert next_budgets(outcomes, law, 0.01, 1) == [next_budget(outcomes, law, 0.01)]
    # nothing known: the map's answer, then GROWTH below it, then GROWTH above it
    assert next_budgets([], law, 0.01, 3) == pytest.approx([0.1, 0.1 / GROWTH, 0.1 * GROWTH])
    # a bracket 0.05 .. 0.8 around the map's 0.1: the wider side (0.1 .. 0.8) is split first
    assert next_budgets([(0.05, True), (0.8, False)], law, 0.01, 3) == pytest.approx(
        [0.1, math.sqrt(0.08), math.sqrt(0.1 * math.sqrt(0.08))]
    )
    # gaps narrower than the resolution are not split
    narrow = [(0.1, True), (0.1 * RESOLUTION**1.5, False)]
    assert len(next_budgets(narrow, law, 0.01, 4)) == 1
    assert next_budgets([(0.1, True), (0.1 * RESOLUTION, False)], law, 0.01, 4) == []
