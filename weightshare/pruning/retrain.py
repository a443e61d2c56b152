"""Retraining with frozen masks, and the iterative prune/retrain schedule.

Retraining reuses the recipes' loop (:func:`weightshare.networks.training.fit`); after every
optimizer step the removed weights are set back to 0, so neither the gradient, the momentum
nor the weight decay can revive them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from weightshare.networks.registry import TrainRecipe
from weightshare.pruning.magnitude import apply_masks, magnitude_masks


def retrain(
    model,
    masks: Mapping[str, object],
    x,
    y,
    recipe: TrainRecipe,
    *,
    progress: bool = False,
    desc: str = "retrain",
    loss=None,
) -> None:
    """Fine-tune ``model`` in place on (x, y) with ``masks`` frozen.

    Args:
        model: the pruned module (removed weights already 0).
        masks: weight key -> bool keep-mask (:func:`magnitude_masks`).
        x: float32 (N, C, S, S) images; y: int64 (N,) labels.
        recipe: epochs, batch, peak lr, weight decay of the fine-tuning; ``recipe.seed`` seeds
            the shuffling.
        loss: the batch loss (``fit``'s ``loss``; e.g. :func:`~weightshare.pruning.distill.
            distillation_loss`); None: cross-entropy.
    """
    from weightshare.networks.training import fit_seeded

    apply_masks(model, masks)
    fit_seeded(
        model,
        x,
        y,
        recipe,
        after_step=lambda: apply_masks(model, masks),
        desc=desc,
        progress=progress,
        loss=loss,
    )


def iterative_prune(
    model,
    x,
    y,
    recipe: TrainRecipe,
    *,
    sparsity_steps: Sequence[Mapping[str, float] | float] = (),
    quality_steps: Sequence[Mapping[str, float] | float] = (),
    last_recipe: TrainRecipe | None = None,
    after_prune: Callable[[int, dict], None] | None = None,
    on_step: Callable[[int, dict], None] | None = None,
    progress: bool = False,
    loss=None,
) -> dict:
    """Han et al.'s schedule: prune -> retrain, repeated; each step prunes further (a removed
    weight stays removed).

    Args:
        model: the module, changed in place.
        x: float32 (N, C, S, S) images; y: int64 (N,) labels.
        recipe: the fine-tuning of every step (:func:`retrain`).
        sparsity_steps: per step, the target sparsity (float or weight key -> float).
        quality_steps: per step, the quality (x std) instead; give one of the two sequences.
        last_recipe: the last step's fine-tuning instead of ``recipe`` (None: ``recipe``).
        after_prune: called with (step, masks) once the step's masks are applied, before its
            retraining (e.g. to score the pruned network).
        on_step: called with (step, masks) after each retraining.
        loss: the retraining's batch loss (:func:`retrain`); None: cross-entropy.

    Returns:
        The final masks (weight key -> bool tensor).
    """
    masks: dict = {}
    steps = [("sparsity", s) for s in sparsity_steps] + [("quality", q) for q in quality_steps]
    for i, (kind, value) in enumerate(steps, 1):
        masks = magnitude_masks(model, masks=masks or None, **{kind: value})
        if after_prune is not None:
            apply_masks(model, masks)
            after_prune(i, masks)
        step_recipe = last_recipe if i == len(steps) and last_recipe is not None else recipe
        retrain(
            model, masks, x, y, step_recipe, progress=progress, desc=f"prune round {i}", loss=loss
        )
        if on_step is not None:
            on_step(i, masks)
    return masks
