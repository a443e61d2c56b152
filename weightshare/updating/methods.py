"""The update methods of one round, as the seed defines them (research/prune_dpu.md part 3).

Each method trains a model (already loaded with the round's start point) in place on the round's
data; the driver turns the result into an update file. ``E`` = ``recipe.epochs``; every method
spends ``2 E`` epochs per round (the seed's equal budget).

========  ==================================================================  ===========
method    what it does                                                        file base
========  ==================================================================  ===========
dpu       full update (E), metric ``lam*g + (1-lam)*l`` (normalised), global  start point
          top ``floor(k I)``, rewind the rest, sparse fine-tuning (E)
gcpu      as dpu with ``lam = 1`` (squared displacement only)                  start point
lcpu      as dpu with ``lam = 0`` (trajectory contribution only)              start point
rpu       random ``ceil(k n_l)`` per layer, sparse training (2E)              start point
fu        full updating (2E)                                                  start point
pruning   from the shared init: full training (E), keep the global top        zeros
          ``floor(k I)`` by ``|w|``, zero the rest, sparse fine-tuning (E)
========  ==================================================================  ===========
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from weightshare.networks.registry import TrainRecipe
from weightshare.updating import selection
from weightshare.updating.masked_training import train_step

METHOD_NAMES = ("dpu", "gcpu", "lcpu", "rpu", "fu", "pruning")


@dataclass(frozen=True)
class RoundData:
    """What one round trains on and with.

    Attributes:
        x, y: float32 (N, 1, S, S) images and int64 (N,) labels collected so far.
        recipe: one step (``E`` epochs, batch, peak lr, weight decay) for ``training.fit``.
        ratio: the updating ratio ``k`` (share of conv/FC weights one round may change).
        lam: DPU's mix of the two contribution terms.
        generator: seeds minibatch order and RPU's selection.
    """

    x: torch.Tensor
    y: torch.Tensor
    recipe: TrainRecipe
    ratio: float
    lam: float
    generator: torch.Generator


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: params[n].detach().clone() for n in selection.selectable(model)}


def _contribution(model: nn.Module, data: RoundData, lam: float) -> None:
    start = _weights(model)
    names = tuple(start)
    local = train_step(model, data.x, data.y, data.recipe, data.generator, track=names)
    masks = selection.global_top(
        selection.contribution_metric(start, _weights(model), local, lam),
        selection.budget(model, data.ratio),
    )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].copy_(torch.where(mask, params[name], start[name]))
    train_step(
        model,
        data.x,
        data.y,
        data.recipe,
        data.generator,
        masks=masks,
        anchor=start,
    )


def dpu(model: nn.Module, data: RoundData) -> None:
    """Deep partial updating with the round's ``lam``."""
    _contribution(model, data, data.lam)


def gcpu(model: nn.Module, data: RoundData) -> None:
    """Global-contribution partial updating (``lam = 1``)."""
    _contribution(model, data, 1.0)


def lcpu(model: nn.Module, data: RoundData) -> None:
    """Local-contribution partial updating (``lam = 0``)."""
    _contribution(model, data, 0.0)


def rpu(model: nn.Module, data: RoundData) -> None:
    """Random partial updating: a random per-layer subset, trained for ``2 E`` epochs."""
    start = _weights(model)
    masks = selection.random_per_layer(
        {n: w.shape for n, w in start.items()}, data.ratio, data.generator
    )
    double = replace(data.recipe, epochs=2 * data.recipe.epochs)
    train_step(model, data.x, data.y, double, data.generator, masks=masks, anchor=start)


def fu(model: nn.Module, data: RoundData) -> None:
    """Full updating: every weight trained for ``2 E`` epochs."""
    double = replace(data.recipe, epochs=2 * data.recipe.epochs)
    train_step(model, data.x, data.y, double, data.generator)


def pruning(model: nn.Module, data: RoundData) -> None:
    """A freshly trained sparse model with ``floor(k I)`` non-zero conv/FC weights (the model
    must hold the shared init)."""
    train_step(model, data.x, data.y, data.recipe, data.generator)
    masks = selection.global_magnitude(_weights(model), selection.budget(model, data.ratio))
    zeros = {n: torch.zeros_like(m, dtype=torch.float32) for n, m in masks.items()}
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)
    train_step(
        model,
        data.x,
        data.y,
        data.recipe,
        data.generator,
        masks=masks,
        anchor=zeros,
    )


METHODS: dict[str, Callable[[nn.Module, RoundData], None]] = {
    "dpu": dpu,
    "gcpu": gcpu,
    "lcpu": lcpu,
    "rpu": rpu,
    "fu": fu,
    "pruning": pruning,
}
