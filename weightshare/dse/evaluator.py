"""Score one candidate on a backend: swap in cached clustered weights, evaluate, restore.

The :class:`Evaluator` is what a worker holds: the backend (model), the splits, and the
per-(layer, k) :class:`~weightshare.dse.clustering.ClusterCache`. It never imports a framework;
the backend does. Sizes come from :mod:`weightshare.dse.size` so every backend shares one model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from weightshare.backends.base import Backend
from weightshare.dse.clustering import ClusterCache
from weightshare.dse.size import LayerSize, coded_bits, fixed_bits
from weightshare.dse.space import Candidate
from weightshare.types import EvalResult, LayerInfo, ModelDescription


class Evaluator:
    """Evaluates candidates on a backend that it restores to pristine weights after each one.

    Args:
        backend: a loaded backend (see :class:`weightshare.backends.base.Backend`).
        splits: split name -> split object the backend can evaluate.
        granularity, init, seed: clustering settings (see :func:`share_weights`).
    """

    def __init__(
        self,
        backend: Backend,
        splits: Mapping[str, object],
        *,
        granularity: str = "layer",
        init: str = "best",
        seed: int = 0,
    ) -> None:
        self.backend = backend
        self.splits = dict(splits)
        self.layers: list[LayerInfo] = backend.layers()
        self.cache = ClusterCache(
            {layer.name: backend.get_weights(layer.name) for layer in self.layers},
            granularity=granularity,
            init=init,
            seed=seed,
        )
        self._coded: dict[tuple[str, int], float] = {}

    def describe(self) -> ModelDescription:
        """The model's backend, layers and unclustered scalar count, and the split sizes."""
        return ModelDescription(
            backend=self.backend.name,
            layers=tuple(self.layers),
            n_unclustered=self.backend.n_unclustered(),
            splits={name: len(split) for name, split in self.splits.items()},
        )

    def coded_bits(self, layer: str, k: int) -> float:
        """Real coded size of one clustered layer in bits: the model file's ANS-coded indices
        with their table plus the fp32 codebook (cached per (layer, k))."""
        key = (layer, k)
        if key not in self._coded:
            self._coded[key] = coded_bits(self.cache.get(layer, k), coder="ans")
        return self._coded[key]

    def evaluate(self, candidate: Candidate, split: str = "search") -> EvalResult:
        """Score ``candidate`` on ``split``; the backend is restored even if evaluation fails."""
        start = time.perf_counter()
        k_map = candidate.as_dict()
        shared = {name: self.cache.get(name, k) for name, k in k_map.items()}
        try:
            if shared:
                self.backend.set_weights({n: sw.dequantize() for n, sw in shared.items()})
            acc = self.backend.evaluate(self.splits[split])
        finally:
            self.backend.restore()
        return EvalResult(
            key=candidate.key(),
            split=split,
            accuracy=acc.top1,
            top5=acc.top5,
            n_images=acc.n_images,
            correct=int(acc.correct.sum()),
            seconds=time.perf_counter() - start,
            bits_fixed={
                n: fixed_bits(LayerSize(n, int(sw.indices.size), sw.k, sw.groups))
                for n, sw in shared.items()
            },
            bits_coded={n: self.coded_bits(n, k) for n, k in k_map.items()},
        )
