"""One training step of a round: the project's loop (:func:`weightshare.networks.training.fit`)
with some conv/FC weights frozen and each weight's trajectory contribution tracked.

After every optimizer step, frozen entries are put back to their anchor values (a masked
increment, as the seed's ``PU_*_optimizer``), and for the tracked weights the contribution
``sum_t -dw_t * g_t`` (the first-order loss decrease the weight's movement caused, with ``g_t`` the
minibatch gradient) is accumulated. Biases and BatchNorm parameters are never masked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from weightshare.networks.registry import TrainRecipe
from weightshare.networks.training import fit


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainRecipe,
    generator: torch.Generator,
    *,
    masks: Mapping[str, torch.Tensor] | None = None,
    anchor: Mapping[str, torch.Tensor] | None = None,
    track: tuple[str, ...] = (),
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Train ``model`` in place with ``fit`` (SGD Nesterov, one-cycle schedule).

    Args:
        model: the network.
        x, y: float32 (N, 1, S, S) images and int64 (N,) labels.
        recipe: epochs, batch size, peak lr, weight decay of this step.
        generator: seeds the minibatch order.
        masks: parameter name -> bool tensor; only True entries move (None: all move).
        anchor: parameter name -> the values frozen entries keep (required with ``masks``).
        track: names whose trajectory contribution is accumulated.
        on_epoch: passed to ``fit``: called after every epoch (masks already applied) with
            (epoch, mean train loss, seconds).

    Returns:
        Contributions by name (float32, shaped like the weights; empty without ``track``).
    """
    params = dict(model.named_parameters())
    contrib = {n: torch.zeros_like(params[n]) for n in track}
    last = {n: params[n].detach().clone() for n in track}

    def after_step() -> None:
        with torch.no_grad():
            for name, mask in (masks or {}).items():
                params[name].copy_(torch.where(mask, params[name], anchor[name]))
            for name in track:
                contrib[name] -= (params[name] - last[name]) * params[name].grad
                last[name].copy_(params[name])

    fit(
        model,
        x,
        y,
        recipe,
        generator,
        after_step=after_step,
        on_epoch=on_epoch,
        desc="round",
        progress=False,
    )
    return contrib
