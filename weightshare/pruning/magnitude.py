"""Unstructured magnitude pruning, per layer (Han, Pool, Tran, Dally, NIPS 2015).

Each conv/linear weight gets a boolean mask (``True`` = kept). A weight is removed when
``|w| < quality * std(layer)`` (the paper's quality parameter; ``std`` over the layer's weights
that are still kept), or, with a target sparsity, when it is among the ``round(sparsity * n)``
smallest magnitudes of its layer. Biases and BatchNorm parameters are never pruned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from weightshare.errors import UserError


def prunable(model) -> dict[str, object]:
    """State-dict key -> weight parameter of every ``Conv2d`` and ``Linear`` of ``model``."""
    from torch import nn

    return {
        f"{name}.weight": module.weight
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    }


def check_weight_keys(parameter: str, keys: Iterable[str], model, network: str) -> None:
    """Refuse a per-layer setting that names a weight ``model`` does not prune.

    Args:
        parameter: the setting's name in the message (``--sparsity``, ``--layer-bits``).
        keys: the state-dict keys it names.
        model: a PyTorch module; its :func:`prunable` keys are the allowed ones.
        network: the model's name in the message.

    Raises:
        UserError: the first unknown key, with the allowed keys.
    """
    allowed = list(prunable(model))
    unknown = [key for key in keys if key not in allowed]
    if unknown:
        raise UserError(
            f"{parameter} names {unknown[0]!r}, not a weight of {network}; its weights: "
            f"{', '.join(allowed)}"
        )


def _check_fraction(name: str, value: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < high:
        raise UserError(f"{name} must be a float in [0, {high:g}); got {value!r}")
    return float(value)


def sparsity_mask(
    weights: np.ndarray, sparsity: float, keep: np.ndarray | None = None
) -> np.ndarray:
    """Keep-mask that removes the ``round(sparsity * n)`` smallest ``|w|`` of one tensor.

    The one rule of magnitude pruning by target sparsity (numpy, no framework): the exploration's
    ``--prune-grid`` and :func:`magnitude_masks` both call it.

    Args:
        weights: floating-point array of any shape, ``n`` elements.
        sparsity: fraction of the ``n`` weights to remove, in [0, 1) (trusted).
        keep: current bool mask of the weights' shape (iterative pruning), or None: weights
            it already removes are removed first and stay removed.

    Returns:
        bool array of the weights' shape, ``True`` = kept; ties in ``|w|`` are broken by flat
        position (a stable sort), so exactly ``round(sparsity * n)`` weights are removed, or
        the weights ``keep`` already removes where those are more (they stay removed).
    """
    magnitude = np.abs(np.asarray(weights)).reshape(-1)
    if keep is not None:
        magnitude = np.where(np.asarray(keep).reshape(-1), magnitude, -1.0).astype(magnitude.dtype)
    n_remove = round(sparsity * magnitude.size)
    out = np.ones(magnitude.size, dtype=bool)
    out[np.argsort(magnitude, kind="stable")[:n_remove]] = False
    if keep is not None:
        out &= np.asarray(keep).reshape(-1)
    return out.reshape(np.shape(weights))


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
        UserError: neither or both of quality / sparsity, a value out of range, or a key of
            a map (or of ``masks``) that is not a prunable weight of ``model``.
    """
    import torch

    if (quality is None) == (sparsity is None):
        raise UserError("give exactly one of quality (x std) or sparsity per layer")
    for name, setting in (("quality", quality), ("sparsity", sparsity), ("masks", masks)):
        if isinstance(setting, Mapping):
            check_weight_keys(name, setting, model, type(model).__name__)
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
        if quality is not None:
            q = _check_fraction(f"quality of {key}", value, 100.0)
            kept = w[keep]
            threshold = q * float(kept.std()) if kept.numel() > 1 else 0.0
            keep &= w.abs() >= threshold
        else:
            s = _check_fraction(f"sparsity of {key}", value, 1.0)
            old_np = None if old is None else old.numpy()
            keep = torch.from_numpy(sparsity_mask(w.numpy(), s, old_np))
        out[key] = keep
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
