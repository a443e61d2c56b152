"""Which weights a round may change: DPU's contribution metric, random and magnitude masks.

Only conv/FC weights (parameters named ``*weight`` with ``dim > 1``) are selected; biases and
BatchNorm parameters are always trained and sent as they change. ``I`` is the number of such
weights, the budget of a round ``floor(k * I)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def selectable(model: nn.Module) -> list[str]:
    """Names of the conv/FC weights, in parameter order."""
    return [n for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]


def budget(model: nn.Module, ratio: float) -> int:
    """``floor(ratio * I)``: how many conv/FC weights one round may change (>= 1)."""
    total = sum(p.numel() for n, p in model.named_parameters() if n in set(selectable(model)))
    return max(1, int(ratio * total))


def contribution_metric(
    start: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    local: Mapping[str, torch.Tensor],
    lam: float,
) -> dict[str, torch.Tensor]:
    """DPU's metric ``lam * g / sum(g) + (1 - lam) * l / sum(l)`` per weight.

    Args:
        start: round-start weights ``w0`` by name (the selectable ones).
        end: weights after the full update ``wf`` (same names, shapes).
        local: accumulated trajectory contribution ``sum_t -dw_t * g_t`` per weight.
        lam: 1 gives GCPU (squared displacement only), 0 gives LCPU (trajectory only).

    Both terms are normalised by their sum over the whole network, so the budget is allocated
    globally. Returns float64 tensors shaped like the weights.
    """
    glob = {n: (end[n].double() - start[n].double()) ** 2 for n in start}
    g_sum = sum(float(v.sum()) for v in glob.values()) or 1.0
    l_sum = sum(float(local[n].double().sum()) for n in start) or 1.0
    return {n: lam * glob[n] / g_sum + (1 - lam) * local[n].double() / l_sum for n in start}


def global_top(metric: Mapping[str, torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    """Boolean masks of the ``count`` largest metric values over all tensors (ties: lowest
    flat position first, so the selection is deterministic)."""
    names = list(metric)
    flat = torch.cat([metric[n].reshape(-1) for n in names])
    order = torch.sort(-flat, stable=True).indices[:count]
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[order] = True
    masks, offset = {}, 0
    for n in names:
        size = metric[n].numel()
        masks[n] = chosen[offset : offset + size].reshape(metric[n].shape)
        offset += size
    return masks


def random_per_layer(
    shapes: Mapping[str, torch.Size], ratio: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """RPU: in each layer a uniform random ``ceil(ratio * n_layer)`` subset (seeded)."""
    masks = {}
    for name, shape in shapes.items():
        size = int(torch.Size(shape).numel())
        count = min(size, max(1, int(-(-ratio * size // 1))))
        mask = torch.zeros(size, dtype=torch.bool)
        mask[torch.randperm(size, generator=generator)[:count]] = True
        masks[name] = mask.reshape(shape)
    return masks


def global_magnitude(weights: Mapping[str, torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    """Pruning baseline: keep the ``count`` largest ``|w|`` over all tensors."""
    return global_top({n: w.abs() for n, w in weights.items()}, count)
