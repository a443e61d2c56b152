"""FPGM filter pruning (He, Liu, Wang, Hu, Yang; CVPR 2019), structural.

Per prunable conv (a :class:`~weightshare.networks.shrink.Chain`), the filters nearest the
geometric median of the layer's filters are the most replaceable; as in the authors' code, a
filter's score is the sum of its Euclidean distances to all other filters of the layer, and the
``round(rate * n)`` lowest scores are removed. The network is then rebuilt physically smaller
(:func:`~weightshare.networks.shrink.shrink`: conv, its BatchNorm and the next layer's inputs).
"""

from __future__ import annotations

from collections.abc import Mapping

from weightshare.errors import UserError
from weightshare.networks.shrink import chains_for, shrink


def gm_scores(weight) -> list[float]:
    """Sum of Euclidean distances from each filter to the others: weight (out, in, kh, kw) ->
    ``out`` floats; the lowest lies nearest the geometric median."""
    import torch

    flat = weight.detach().reshape(weight.shape[0], -1).double()
    return torch.cdist(flat, flat).sum(1).tolist()


def fpgm_keep(model, network: str, rate: float | Mapping[str, float]) -> dict[str, list[int]]:
    """Conv name -> sorted output channels to keep, removing ``rate`` of each chain's filters.

    Raises:
        UserError: a network without prunable chains, or a rate outside [0, 1).
    """
    keep = {}
    for chain in chains_for(network):
        r = rate.get(chain.conv, 0.0) if isinstance(rate, Mapping) else rate
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0 <= r < 1:
            raise UserError(f"--prune-rate must be a float in [0, 1); got {r!r}")
        scores = gm_scores(model.get_submodule(chain.conv).weight)
        n_remove = min(round(r * len(scores)), len(scores) - 1)
        order = sorted(range(len(scores)), key=lambda i: (scores[i], i))
        keep[chain.conv] = sorted(order[n_remove:])
    return keep


def fpgm_prune(model, network: str, rate: float | Mapping[str, float]):
    """Remove ``rate`` of the filters of every prunable conv of ``model`` (in place, physically
    smaller). Returns ``(model, keep)`` with ``keep`` from :func:`fpgm_keep`."""
    keep = fpgm_keep(model, network, rate)
    return shrink(model, chains_for(network), keep), keep
