"""A k map applied to a loaded backend: cluster the named layers, swap them in, restore after.

``modes/evaluate.py`` and ``modes/export.py`` score (and write) a model with shared weights;
both go through :func:`shared_weights` so the model is always restored to its pristine weights,
whatever fails in between (the exploration's :class:`~weightshare.dse.evaluator.Evaluator`
keeps the same rule for its candidates).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from weightshare.codecs.sparse import SparseShared
from weightshare.types import SharedWeights


def cluster_layers(
    backend,
    k_map: Mapping[str, int],
    granularity: str,
    init: str,
    importance=None,
    sparsity: Mapping[str, float] | None = None,
) -> dict[str, SharedWeights | SparseShared]:
    """The shared weights of each layer of ``k_map`` (layer name -> k), 1-D k-means over the
    backend's pristine weights (:class:`~weightshare.dse.clustering.ClusterCache`; ``importance``
    is its per-weight k-means weighting, None for plain k-means). A layer named in ``sparsity``
    (a ``--prune-grid`` point) is magnitude-pruned to it first and its survivors shared: a
    :class:`~weightshare.codecs.sparse.SparseShared`."""
    from weightshare.dse.clustering import ClusterCache
    from weightshare.dse.space import choice

    cache = ClusterCache(
        {name: backend.get_weights(name) for name in k_map},
        granularity=granularity,
        init=init,
        importance=importance,
    )
    pruned = sparsity or {}
    return {name: cache.choice(name, choice(k, pruned.get(name, 0.0))) for name, k in k_map.items()}


@contextmanager
def shared_weights(
    backend, shared: Mapping[str, SharedWeights | SparseShared]
) -> Iterator[dict[str, np.ndarray]]:
    """Run the ``with`` body on ``backend`` with ``shared``'s dequantized weights swapped in
    (the body gets them: layer name -> float32 array of the layer's weight shape); the pristine
    weights are restored on leaving, even on an error."""
    dense = {name: sw.dequantize() for name, sw in shared.items()}
    try:
        if dense:
            backend.set_weights(dense)
        yield dense
    finally:
        backend.restore()
