"""Selection: DPU's metric, global top-k, random per-layer and magnitude masks; the schedule."""

from __future__ import annotations

import torch

from weightshare.networks.lenet import LeNet300
from weightshare.updating import selection
from weightshare.updating.schedule import RoundSchedule, reinit_due


def test_selectable_weights_and_budget_of_lenet300():
    model = LeNet300()
    assert selection.selectable(model) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert selection.budget(model, 0.01) == int(0.01 * 266_200) == 2662
    assert selection.budget(model, 1e-9) == 1


def test_metric_mixes_normalised_displacement_and_trajectory():
    start = {"a": torch.zeros(4), "b": torch.zeros(2)}
    end = {"a": torch.tensor([1.0, 0.0, 2.0, 0.0]), "b": torch.tensor([1.0, 0.0])}
    local = {"a": torch.tensor([0.0, 3.0, 0.0, 1.0]), "b": torch.tensor([0.0, 0.0])}
    glob = selection.contribution_metric(start, end, local, 1.0)
    assert torch.equal(glob["a"], torch.tensor([1 / 6, 0, 4 / 6, 0], dtype=torch.float64))
    loc = selection.contribution_metric(start, end, local, 0.0)
    assert torch.equal(loc["a"], torch.tensor([0, 0.75, 0, 0.25], dtype=torch.float64))
    mixed = selection.contribution_metric(start, end, local, 0.5)
    assert torch.allclose(mixed["a"], 0.5 * glob["a"] + 0.5 * loc["a"])
    masks = selection.global_top(mixed, 2)
    # 0.5*(4/6) = .333 and 0.5*.75 = .375 beat 0.5*(1/6 + 0) and b's 0.5*(1/6)
    assert masks["a"].tolist() == [False, True, True, False]
    assert masks["b"].tolist() == [False, False]


def test_global_top_breaks_ties_by_position():
    masks = selection.global_top({"a": torch.ones(3), "b": torch.ones(2)}, 4)
    assert masks["a"].tolist() == [True, True, True] and masks["b"].tolist() == [True, False]


def test_random_per_layer_is_seeded_and_uniform_per_layer():
    shapes = {"a": torch.Size([10, 10]), "b": torch.Size([7])}
    one = selection.random_per_layer(shapes, 0.05, torch.Generator().manual_seed(3))
    two = selection.random_per_layer(shapes, 0.05, torch.Generator().manual_seed(3))
    assert int(one["a"].sum()) == 5 and int(one["b"].sum()) == 1  # ceil(0.35) = 1
    assert all(torch.equal(one[n], two[n]) for n in shapes)


def test_magnitude_keeps_the_largest_absolute_values():
    masks = selection.global_magnitude(
        {"a": torch.tensor([0.1, -3.0]), "b": torch.tensor([2.0, -0.5])}, 2
    )
    assert masks["a"].tolist() == [False, True] and masks["b"].tolist() == [True, False]


def test_schedule_sizes_order_and_reinit_trigger():
    schedule = RoundSchedule(1000, 1000, 5, seed=4)
    assert schedule.sizes(3500) == [1000, 2000, 3000, 3500, 3500]
    assert (schedule.order(50) == RoundSchedule(1, 1, 1, seed=4).order(50)).all()
    assert sorted(schedule.order(50).tolist()) == list(range(50))
    # fires when the data has more than doubled: 3k after 1k, then 7k after 3k
    assert [reinit_due(n, 1000) for n in (2000, 3000)] == [False, True]
    assert [reinit_due(n, 3000) for n in (6000, 7000)] == [False, True]
