"""Adam steps on a model whose conv/FC weights may be partly frozen, tracking contributions.

This is the seed's ``PU_Adam_optimizer``: the Adam increment is applied only where the mask is
set (frozen entries are put back to their anchor values after each step, which equals a masked
increment), and optionally each weight's trajectory contribution ``sum_t -dw_t * g_t`` (the
first-order loss decrease its movement caused) is accumulated. Biases and BatchNorm parameters
are never masked. Learning rate: ``lr``, divided by 10 after each third of the epochs (the
seed's StepLR for the MLP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class StepRecipe:
    """One training step of a round.

    Attributes:
        epochs: passes over the round's data (>= 1).
        lr: Adam learning rate.
        batch_size: images per minibatch.
    """

    epochs: int = 3
    lr: float = 5e-3
    batch_size: int = 128


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: StepRecipe,
    generator: torch.Generator,
    *,
    masks: Mapping[str, torch.Tensor] | None = None,
    anchor: Mapping[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    track: tuple[str, ...] = (),
) -> tuple[torch.optim.Optimizer, dict[str, torch.Tensor]]:
    """Train ``model`` in place.

    Args:
        model: the network (train mode is set here).
        x, y: float32 (N, 1, S, S) images and int64 (N,) labels.
        recipe: epochs, lr, batch size.
        generator: seeds the minibatch order.
        masks: parameter name -> bool tensor; only True entries move (None: all move).
        anchor: parameter name -> the values frozen entries keep (required with ``masks``).
        optimizer: continue with this Adam (its moments carry over, as in the seed's step 2);
            None builds a fresh one.
        track: names whose trajectory contribution ``sum -dw * g`` is accumulated.

    Returns:
        ``(optimizer, contributions)``: contributions by name, shaped like the weights.
    """
    params = dict(model.named_parameters())
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    for group in optimizer.param_groups:
        group["lr"] = recipe.lr
    third = max(1, -(-recipe.epochs // 3))
    contrib = {n: torch.zeros_like(params[n]) for n in track}
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * 0.1 ** (epoch // third)
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            before = {n: params[n].detach().clone() for n in track}
            optimizer.step()
            with torch.no_grad():
                if masks is not None:
                    for name, mask in masks.items():
                        params[name].copy_(torch.where(mask, params[name], anchor[name]))
                for name in track:
                    contrib[name] -= (params[name] - before[name]) * params[name].grad
    return optimizer, contrib
