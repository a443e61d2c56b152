"""Unstructured magnitude pruning, per layer (Han, Pool, Tran, Dally, NIPS 2015).

Each conv/linear weight gets a boolean mask (``True`` = kept). A weight is removed when
``|w| < quality * std(layer)`` (the paper's quality parameter; ``std`` over the layer's weights
that are still kept), or, with a target sparsity, when it is among the ``round(sparsity * n)``
smallest magnitudes of its layer. Biases and BatchNorm parameters are never pruned.
"""

from __future__ import annotations

from collections.abc import Mapping

from weightshare.errors import UserError


def prunable(model) -> dict[str, object]:
    """State-dict key -> weight parameter of every ``Conv2d`` and ``Linear`` of ``model``."""
    from torch import nn

    return {
        f"{name}.weight": module.weight
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    }


def _check_fraction(name: str, value: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < high:
        raise UserError(f"{name} must be a float in [0, {high:g}); got {value!r}")
    return float(value)


def magnitude_masks(
    model,
    *,
    quality: float | Mapping[str, float] | None = None,
    sparsity: float | Mapping[str, float] | None = None,
    masks: Mapping[str, object] | None = None,
) -> dict:
    """Boolean keep-masks of every prunable weight, by magnitude, per layer.

    Args:
        model: a PyTorch module.
        quality: remove ``|w| < quality * std`` (std of the layer's currently kept weights);
            one float for every layer or a map weight key -> float (missing layers unpruned).
        sparsity: instead, the fraction in [0, 1) of each layer's weights to remove (the
            smallest ``|w|``; ties broken by position, so the count is exact).
        masks: current masks (iterative pruning): removed weights stay removed.

    Returns:
        weight key -> bool tensor of the weight's shape (``True`` = kept).

    Raises:
        UserError: neither or both of quality / sparsity, or a value out of range.
    """
    import torch

    if (quality is None) == (sparsity is None):
        raise UserError("give exactly one of quality (x std) or sparsity per layer")
    weights = prunable(model)
    out = {}
    for key, weight in weights.items():
        w = weight.detach()
        old = masks.get(key) if masks else None
        keep = torch.ones_like(w, dtype=torch.bool) if old is None else old.clone()
        setting = quality if quality is not None else sparsity
        value = setting.get(key) if isinstance(setting, Mapping) else setting
        if value is None:
            out[key] = keep
            continue
        magnitude = w.abs()
        if quality is not None:
            q = _check_fraction(f"quality of {key}", value, 100.0)
            kept = w[keep]
            threshold = q * float(kept.std()) if kept.numel() > 1 else 0.0
            keep &= magnitude >= threshold
        else:
            s = _check_fraction(f"sparsity of {key}", value, 1.0)
            n_remove = round(s * w.numel())
            order = torch.argsort(
                torch.where(keep, magnitude, torch.full_like(magnitude, -1.0)).flatten(),
                stable=True,
            )
            keep = torch.ones(w.numel(), dtype=torch.bool)
            keep[order[:n_remove]] = False
            keep = keep.reshape(w.shape)
            if old is not None:
                keep &= old
        out[key] = keep
    unknown = [k for k in (masks or {}) if k not in weights]
    if unknown:
        raise UserError(f"masks name {unknown[0]!r}, which is not a prunable weight")
    return out


def apply_masks(model, masks: Mapping[str, object]) -> None:
    """Zero the removed weights of ``model`` in place (``weight *= mask``)."""
    import torch

    weights = prunable(model)
    with torch.no_grad():
        for key, mask in masks.items():
            weights[key].mul_(mask.to(weights[key].dtype))


def masks_from_zeros(model) -> dict:
    """Masks of a pruned checkpoint: a weight is kept where it is nonzero."""
    return {key: w.detach() != 0 for key, w in prunable(model).items()}


def kept_fraction(masks: Mapping[str, object]) -> dict[str, float]:
    """weight key -> fraction of its weights kept."""
    return {key: float(mask.float().mean()) for key, mask in masks.items()}
