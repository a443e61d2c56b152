"""Masked Adam steps: frozen weights stay exactly at their anchor; contributions accumulate."""

from __future__ import annotations

import torch

from weightshare.networks.lenet import LeNet300
from weightshare.networks.registry import TrainRecipe
from weightshare.updating import selection
from weightshare.updating.masked_training import train_step


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)


def _masked_model():
    """A seeded LeNet-300-100, its parameters by name, the anchor (its conv/FC weights) and
    seeded 1 % random masks of them."""
    torch.manual_seed(0)
    model = LeNet300()
    params = dict(model.named_parameters())
    anchor = {n: params[n].detach().clone() for n in selection.selectable(model)}
    masks = selection.random_per_layer(
        {n: w.shape for n, w in anchor.items()}, 0.01, torch.Generator().manual_seed(1)
    )
    return model, params, anchor, masks


def _train_masked(model, anchor, masks, epochs: int, on_epoch=None) -> None:
    """:func:`train_step` on :func:`_data` (batch 16, lr 0.05, seeded order) with the masks."""
    x, y = _data()
    recipe = TrainRecipe(epochs=epochs, batch_size=16, lr=0.05)
    g = torch.Generator().manual_seed(2)
    train_step(model, x, y, recipe, g, masks=masks, anchor=anchor, on_epoch=on_epoch)


def test_frozen_entries_keep_their_anchor_and_biases_train():
    model, params, anchor, masks = _masked_model()
    bias = params["fc1.bias"].detach().clone()
    _train_masked(model, anchor, masks, epochs=1)
    for name, mask in masks.items():
        assert torch.equal(params[name][~mask], anchor[name][~mask])
        # selected weights move, except those behind ReLUs that never fired
        assert (params[name][mask] != anchor[name][mask]).float().mean() > 0.5
    assert not torch.equal(params["fc1.bias"], bias)


def test_contributions_are_deterministic_and_mostly_positive():
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = LeNet300()
        x, y = _data()
        local = train_step(
            model,
            x,
            y,
            TrainRecipe(epochs=2, batch_size=16, lr=0.01),
            torch.Generator().manual_seed(2),
            track=("fc3.weight",),
        )
        results.append(local["fc3.weight"])
    assert torch.equal(results[0], results[1])
    assert float(results[0].sum()) > 0  # the steps lowered the minibatch losses


def test_on_epoch_sees_every_epoch_with_the_masks_applied():
    model, params, anchor, masks = _masked_model()
    seen = []

    def on_epoch(epoch: int, loss: float, seconds: float) -> None:
        frozen = all(torch.equal(params[n][~m], anchor[n][~m]) for n, m in masks.items())
        seen.append((epoch, frozen, loss > 0, seconds >= 0))

    _train_masked(model, anchor, masks, epochs=3, on_epoch=on_epoch)
    assert seen == [(1, True, True, True), (2, True, True, True), (3, True, True, True)]
