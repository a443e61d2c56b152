"""Parameter and MAC counts per layer for the real input size, and measured CPU latency.

MACs are counted from the shapes a real forward pass produces (forward hooks), so stride,
padding, dilation and groups (depthwise) are all accounted for:

* ``Conv2d``: ``H_out * W_out * C_out * (C_in / groups) * kh * kw`` per image; the
  unstructured-sparse count skips the zero weights: ``H_out * W_out * nnz(weight)``.
* ``Linear``: ``in * out`` per row (dense), ``nnz(weight)`` (sparse), times the leading dims.

Structural pruning shows as a smaller dense count of the pruned network itself.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LayerCost:
    """One conv / linear layer for one input image.

    Attributes:
        name: module name.
        kind: ``conv``, ``depthwise`` or ``linear``.
        params: weights + bias.
        nonzero_weights: weights that are not exactly 0.
        macs: dense multiply-accumulates per image.
        sparse_macs: MACs left when every multiplication by a zero weight is skipped.
        output_shape: per-image output shape.
    """

    name: str
    kind: str
    params: int
    nonzero_weights: int
    macs: int
    sparse_macs: int
    output_shape: tuple[int, ...]


def layer_costs(model, input_shape: tuple[int, ...]) -> list[LayerCost]:
    """Costs of every ``Conv2d`` / ``Linear`` of ``model`` on one input of ``input_shape``
    (``(C, H, W)``), in call order."""
    import torch
    from torch import nn

    rows: list[LayerCost] = []
    names = {module: name for name, module in model.named_modules()}

    def hook(module, _inputs, output):
        w = module.weight.detach()
        nnz = int((w != 0).sum())
        params = w.numel() + (module.bias.numel() if module.bias is not None else 0)
        if isinstance(module, nn.Conv2d):
            spatial = output.shape[2] * output.shape[3]
            per_out = w.shape[1] * w.shape[2] * w.shape[3]
            macs = spatial * w.shape[0] * per_out
            kind = (
                "depthwise" if module.groups > 1 and module.groups == module.in_channels else "conv"
            )
            sparse = spatial * nnz
        else:
            rows_ = math.prod(output.shape[1:-1]) if output.dim() > 2 else 1
            macs, sparse, kind = rows_ * w.numel(), rows_ * nnz, "linear"
        shape = tuple(output.shape[1:])
        rows.append(LayerCost(names[module], kind, params, nnz, macs, sparse, shape))

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return rows


def latency_ms(model, input_shape: tuple[int, ...], batch: int, *, repeats: int = 20) -> float:
    """Median wall milliseconds of one forward pass of a ``batch`` of zeros (after 3 warm-up
    passes), eval mode, inference mode, the current torch thread count."""
    import torch

    model.eval()
    x = torch.zeros(batch, *input_shape)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            start = time.perf_counter()
            model(x)
            if i >= 3:
                times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def machine() -> str:
    """CPU model name, logical cores and torch threads: the machine a latency was measured on."""
    import os

    import torch

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{name}, {os.cpu_count()} logical cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)"
    )


def totals(rows: list[LayerCost]) -> dict:
    """Sum of params, nonzero weights, MACs and sparse MACs."""
    return {
        "params": sum(r.params for r in rows),
        "nonzero_weights": sum(r.nonzero_weights for r in rows),
        "macs": sum(r.macs for r in rows),
        "sparse_macs": sum(r.sparse_macs for r in rows),
    }


def as_dicts(rows: list[LayerCost]) -> list[dict]:
    """JSON-ready rows."""
    return [asdict(r) | {"output_shape": list(r.output_shape)} for r in rows]
