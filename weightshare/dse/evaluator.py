"""Score one candidate on a backend: swap in cached clustered weights, evaluate, restore.

The :class:`Evaluator` is what a worker holds: the backend (model), the splits, and the
per-(layer, k) :class:`~weightshare.dse.clustering.ClusterCache`. It never imports a framework;
the backend does. Sizes come from :mod:`weightshare.dse.size` so every backend shares one model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from weightshare.backends.base import Backend, LayerInfo
from weightshare.dse.clustering import ClusterCache
from weightshare.dse.size import LayerSize, coded_bits, fixed_bits
from weightshare.dse.space import Candidate


@dataclass(frozen=True)
class EvalResult:
    """One candidate scored on one split.

    Attributes:
        key: the candidate's :meth:`Candidate.key`.
        split: split name (``search``, ``search_full`` or ``holdout``).
        accuracy: top-1 in [0, 1].
        top5: top-5 in [0, 1].
        n_images: images scored.
        correct: images whose top-1 was right (accuracy * n_images, exactly).
        seconds: wall time of swap + forward + restore, in seconds.
        bits_fixed: layer -> fixed-length bits (indices + fp32 codebook) of each clustered
            layer of the candidate.
        bits_coded: layer -> coded bits (the model file's ANS-coded indices, their table
            and the codebook) of each clustered layer.
    """

    key: str
    split: str
    accuracy: float
    top5: float
    n_images: int
    correct: int
    seconds: float
    bits_fixed: dict[str, int]
    bits_coded: dict[str, float]


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

    def describe(self) -> dict:
        """The model's layers (name, shape, kind) and its unclustered scalar count."""
        return {
            "backend": self.backend.name,
            "layers": [
                {"name": x.name, "shape": list(x.shape), "kind": x.kind, "n_weights": x.n_weights}
                for x in self.layers
            ],
            "n_unclustered": self.backend.n_unclustered(),
            "splits": {name: len(split) for name, split in self.splits.items()},
        }

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
