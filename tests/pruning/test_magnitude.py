"""Magnitude pruning: exact per-layer counts, the quality x std rule, frozen masks in retraining."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from weightshare.errors import UserError
from weightshare.networks.lenet import LeNet5, LeNet300
from weightshare.networks.registry import TrainRecipe
from weightshare.pruning.magnitude import (
    apply_masks,
    kept_fraction,
    magnitude_masks,
    masks_from_zeros,
    prunable,
    sparsity_mask,
)
from weightshare.pruning.retrain import iterative_prune, retrain


def _model(cls=LeNet300):
    torch.manual_seed(0)
    return cls()


def test_sparsity_removes_exactly_the_smallest_magnitudes_per_layer():
    model = _model()
    masks = magnitude_masks(model, sparsity=0.9)
    assert set(masks) == {"fc1.weight", "fc2.weight", "fc3.weight"}  # biases never pruned
    for key, mask in masks.items():
        w = prunable(model)[key].detach()
        assert int((~mask).sum()) == round(0.9 * w.numel())
        assert float(w[mask].abs().min()) >= float(w[~mask].abs().max())


def test_per_layer_sparsity_leaves_unnamed_layers_whole():
    masks = magnitude_masks(_model(), sparsity={"fc1.weight": 0.5})
    assert kept_fraction(masks) == {"fc1.weight": 0.5, "fc2.weight": 1.0, "fc3.weight": 1.0}


def test_quality_times_std_threshold():
    model = _model(LeNet5)
    masks = magnitude_masks(model, quality=0.7)
    for key, mask in masks.items():
        w = prunable(model)[key].detach()
        threshold = 0.7 * float(w.std())
        assert torch.equal(mask, w.abs() >= threshold)


def test_removed_weights_stay_removed_in_later_rounds():
    model = _model()
    first = magnitude_masks(model, sparsity=0.5)
    with torch.no_grad():  # a removed weight grows large: it must not come back
        prunable(model)["fc2.weight"][~first["fc2.weight"]] = 100.0
    second = magnitude_masks(model, sparsity=0.8, masks=first)
    for key in first:
        assert not bool((second[key] & ~first[key]).any())
        assert int((~second[key]).sum()) == round(0.8 * second[key].numel())


def test_bad_settings_are_refused():
    with pytest.raises(UserError, match="exactly one"):
        magnitude_masks(_model())
    with pytest.raises(UserError, match=r"sparsity of fc1.weight must be a float in \[0, 1\)"):
        magnitude_masks(_model(), sparsity=1.0)
    with pytest.raises(UserError) as raised:
        magnitude_masks(_model(), sparsity={"fc1.weight": 0.5, "fc1.bias": 0.5})
    assert str(raised.value) == (
        "sparsity names 'fc1.bias', not a weight of LeNet300; its weights: "
        "fc1.weight, fc2.weight, fc3.weight"
    )
    with pytest.raises(UserError, match=r"quality names 'conv1\.weight', not a weight of LeNet300"):
        magnitude_masks(_model(), quality={"conv1.weight": 1.0})
    with pytest.raises(UserError, match=r"^masks names 'fc4\.weight', not a weight of LeNet300;"):
        magnitude_masks(_model(), sparsity=0.5, masks={"fc4.weight": torch.ones(1, dtype=bool)})


def test_retraining_keeps_pruned_weights_at_zero_and_saves_no_mask(small_search):
    model = _model()
    keys = list(model.state_dict())
    masks = magnitude_masks(model, sparsity=0.8)
    apply_masks(model, masks)
    before = {k: w.detach().clone() for k, w in prunable(model).items()}
    x = torch.from_numpy(small_search.images[:256]).float().unsqueeze(1) / 255.0
    y = torch.from_numpy(small_search.labels[:256])
    retrain(model, masks, x, y, TrainRecipe(epochs=1, batch_size=64, lr=0.05, seed=0))
    for key, w in prunable(model).items():
        assert bool((w[~masks[key]] == 0).all())
        assert not torch.equal(w[masks[key]], before[key][masks[key]])  # kept ones trained
    assert list(model.state_dict()) == keys  # masks live apart, never in the state dict
    assert all(torch.equal(masks_from_zeros(model)[k], masks[k]) for k in masks)


def test_iterative_schedule_reaches_the_final_sparsity(small_search):
    model = _model()
    x = torch.from_numpy(small_search.images[:128]).float().unsqueeze(1) / 255.0
    y = torch.from_numpy(small_search.labels[:128])
    seen = []
    masks = iterative_prune(
        model,
        x,
        y,
        TrainRecipe(epochs=1, batch_size=64, lr=0.01, seed=0),
        sparsity_steps=(0.5, 0.75),
        on_step=lambda i, m: seen.append((i, kept_fraction(m)["fc2.weight"])),
    )
    assert seen == [(1, 0.5), (2, 0.25)]
    assert kept_fraction(masks)["fc1.weight"] == 0.25


def test_iterative_schedule_hooks_and_last_recipe(small_search):
    # after_prune sees the masked weights before retraining; last_recipe (0 epochs) leaves the
    # last step's pruned weights as they are, while step 1 (1 epoch) changes them
    model = _model()
    x = torch.from_numpy(small_search.images[:128]).float().unsqueeze(1) / 255.0
    y = torch.from_numpy(small_search.labels[:128])
    recipe = TrainRecipe(epochs=1, batch_size=64, lr=0.01, seed=0)
    before, after = {}, {}
    iterative_prune(
        model,
        x,
        y,
        recipe,
        quality_steps=(0.5, 0.5),
        last_recipe=dataclasses.replace(recipe, epochs=0),
        after_prune=lambda i, m: before.update({i: model.fc2.weight.detach().clone()}),
        on_step=lambda i, m: after.update({i: model.fc2.weight.detach().clone()}),
    )
    assert not torch.equal(before[1], after[1])
    assert torch.equal(before[2], after[2])
    assert int((before[2] == 0).sum()) > int((before[1] == 0).sum()) > 0


def test_sparsity_mask_removes_the_smallest_magnitudes_ties_by_position():
    w = np.array([0.3, -0.1, 0.2, -0.3, 0.0, 0.1], dtype=np.float32)
    assert sparsity_mask(w, 0.5).tolist() == [True, False, True, True, False, False]
    # round(6 / 3) = 2 removed: of the tied |0.1|, the earlier position goes first
    assert sparsity_mask(w, 1 / 3).tolist() == [True, False, True, True, False, True]
    # a removed weight (here the largest) stays removed and counts as the smallest
    keep = np.array([False, True, True, True, True, True])
    assert sparsity_mask(w, 0.5, keep).tolist() == [False, False, True, True, False, True]
    # a mask that already removes more than round(sparsity * n) is kept as it is
    most = np.array([False, False, True, False, False, True])
    assert sparsity_mask(w, 0.5, most).tolist() == most.tolist()
    whole = sparsity_mask(w.reshape(2, 3), 0.0)
    assert whole.all() and whole.shape == (2, 3)


def test_magnitude_masks_and_sparsity_mask_are_one_rule():
    model = _model(LeNet5)
    masks = magnitude_masks(model, sparsity=0.7)
    for key, mask in masks.items():
        w = prunable(model)[key].detach().numpy()
        assert np.array_equal(mask.numpy(), sparsity_mask(w, 0.7))
