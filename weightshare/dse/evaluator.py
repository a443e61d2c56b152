"""Score one candidate on a backend: swap in cached clustered weights, evaluate, restore.

The :class:`Evaluator` is what a worker holds: the backend (model), the splits, and the
per-(layer, k) :class:`~weightshare.dse.clustering.ClusterCache`. It never imports a framework;
the backend does. Sizes come from :mod:`weightshare.dse.size` so every backend shares one model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from weightshare.backends.base import Backend
from weightshare.backends.scoring import accuracy_from_logits
from weightshare.codecs.container import manifest_entry
from weightshare.codecs.model import ModelFileSizer, weight_key
from weightshare.codecs.sparse import SparseShared, encode_sparse_shared
from weightshare.codecs.tensors import encode_shared
from weightshare.dse.clustering import ClusterCache
from weightshare.dse.correction import Calibrator
from weightshare.dse.damage import damage
from weightshare.dse.size import layer_fixed_bits
from weightshare.dse.space import Candidate
from weightshare.networks.inputs import part
from weightshare.types import EvalResult, LayerInfo, ModelDescription

# A split is scored in about PARTS batches of at least MIN_PART images (see Evaluator.parts).
PARTS = 10
MIN_PART = 100
# The exploration's coded size: ANS-coded indices, fp32 codebooks (encode's defaults).
_CODED = {"coder": "ans", "codebook_dtype": "fp32"}


class Evaluator:
    """Evaluates candidates on a backend that it restores to pristine weights after each one.

    Args:
        backend: a loaded backend (see :class:`weightshare.backends.base.Backend`).
        splits: split name -> split object the backend can evaluate.
        granularity, init, seed: clustering settings (see :func:`share_weights`).
        file_sizer: sizes the model file of a candidate exactly (its state holds the layers'
            weights under :func:`~weightshare.codecs.model.weight_key`); None: no file size.
        calibrator: the ``--clustering`` / ``--correct`` state measured on the pristine model
            (:class:`~weightshare.dse.correction.Calibrator`): its importances weight the
            k-means and it corrects every candidate after the swap; None: plain sharing.
        prefix_reuse: score a candidate that shares one layer from that layer on, where the
            backend can (its ``predict_after``: the same logits, the layers before it run once
            per split); never with ``--correct`` (:attr:`Calibrator.corrects`: its corrections
            touch other layers), but with ``--clustering weighted`` alone.
    """

    def __init__(
        self,
        backend: Backend,
        splits: Mapping[str, object],
        *,
        granularity: str = "layer",
        init: str = "best",
        seed: int = 0,
        file_sizer: ModelFileSizer | None = None,
        calibrator: Calibrator | None = None,
        prefix_reuse: bool = True,
    ) -> None:
        self.backend = backend
        self.prefix_reuse = prefix_reuse
        self.file_sizer = file_sizer
        self.splits = dict(splits)
        self.layers: list[LayerInfo] = backend.layers()
        self.cache = ClusterCache(
            {layer.name: backend.get_weights(layer.name) for layer in self.layers},
            granularity=granularity,
            init=init,
            seed=seed,
            importance=None if calibrator is None else calibrator.importance,
        )
        self.calibrator = calibrator
        self._entries: dict[tuple[str, int | str], dict] = {}
        self._reference: dict[str, np.ndarray] = {}
        self._parts: dict[str, list[tuple[int, int, object]]] = {}

    def parts(self, split: str) -> list[tuple[int, int, object]]:
        """The batches a split is scored in: (start, stop, sub-split), about a tenth of the
        split each and at least ``MIN_PART`` images. Every evaluation runs the same batches,
        so stopping early never changes the logits of the batches it scores."""
        if split not in self._parts:
            whole = self.splits[split]
            n = len(whole)
            size = max(MIN_PART, math.ceil(n / PARTS))
            if size >= n:
                self._parts[split] = [(0, n, whole)]
            else:
                self._parts[split] = [
                    (a, min(a + size, n), part(whole, a, min(a + size, n)))
                    for a in range(0, n, size)
                ]
        return self._parts[split]

    def reference(self, split: str) -> np.ndarray:
        """The fp32 model's logits on ``split``, float32 (N, classes), computed once."""
        if split not in self._reference:
            self.backend.restore()
            self._reference[split] = np.concatenate(
                [self.backend.predict(sub) for _, _, sub in self.parts(split)]
            )
        return self._reference[split]

    def describe(self) -> ModelDescription:
        """The model's backend, layers and unclustered scalar count, and the split sizes."""
        return ModelDescription(
            backend=self.backend.name,
            layers=tuple(self.layers),
            n_unclustered=self.backend.n_unclustered(),
            splits={name: len(split) for name, split in self.splits.items()},
        )

    def _entry(self, layer: str, choice: int | str) -> dict:
        """The model file's manifest entry of ``layer`` at ``choice`` (shared with k values, or
        pruned and shared: :func:`~weightshare.dse.space.choice`), its chunks ANS-coded for
        real; cached per (layer, choice)."""
        key = (layer, choice)
        if key not in self._entries:
            shared = self.cache.choice(layer, choice)
            if self.file_sizer is not None:
                entry = self.file_sizer.shared_entry(weight_key(layer), shared)
            elif isinstance(shared, SparseShared):
                entry = manifest_entry(encode_sparse_shared(layer, shared, **_CODED))
            else:
                entry = manifest_entry(encode_shared(layer, shared, **_CODED))
            self._entries[key] = entry
        return self._entries[key]

    def coded_bits(self, layer: str, choice: int | str) -> float:
        """Real coded size of one clustered layer in bits: the model file's ANS-coded indices
        with their table plus the fp32 codebook, and the coded positions of a pruned layer
        (cached per (layer, choice))."""
        return 8.0 * sum(chunk["bytes"] for chunk in self._entry(layer, choice)["chunks"])

    def file_bytes(
        self, candidate: Candidate, corrected: Mapping[str, np.ndarray] | None = None
    ) -> int | None:
        """Exact bytes of the candidate's model file, or None without a file sizer.

        Args:
            corrected: state tensors the ``--correct`` options changed (state-dict name ->
                array, :meth:`Calibrator.corrected_tensors`); the file stores these values.
        """
        if self.file_sizer is None:
            return None
        entries = {weight_key(n): self._entry(n, k) for n, k in candidate.as_dict().items()}
        for name, value in (corrected or {}).items():
            entries.setdefault(name, self.file_sizer.raw_entry(name, value))
        return self.file_sizer.size(entries)

    def _predict(self, sub, shared: Mapping) -> np.ndarray:
        """The backend's logits on ``sub`` with ``shared`` set: from the shared layer on when
        it is the only one changed and the backend can (prefix reuse, the same logits)."""
        run_after = getattr(self.backend, "predict_after", None)
        corrects = self.calibrator is not None and self.calibrator.corrects
        reuse = self.prefix_reuse and not corrects and run_after is not None
        if reuse and len(shared) == 1:
            (layer,) = shared
            logits = run_after(sub, layer)
            if logits is not None:
                return logits
        return self.backend.predict(sub)

    def evaluate(
        self, candidate: Candidate, split: str = "search", stop_below: float | None = None
    ) -> EvalResult:
        """Score ``candidate`` on ``split``: top-1/top-5 and its damage against the fp32 model
        on the same images; the backend is restored even if evaluation fails.

        Args:
            stop_below: when given, scoring stops after the first batch from which the
                split's top-1 is certain to stay below it even if every image left were right
                (exact: the candidate fails that target whatever the rest). The figures are
                then over the ``n_scored`` images scored.
        """
        reference = self.reference(split)
        labels = np.asarray(self.splits[split].labels, np.int64)
        n = len(labels)
        start = time.perf_counter()
        k_map = candidate.as_dict()
        shared = {name: self.cache.choice(name, k) for name, k in k_map.items()}
        scored, correct, out, corrected = 0, 0, [], {}
        try:
            if shared:
                dense = {n: sw.dequantize() for n, sw in shared.items()}
                self.backend.set_weights(dense)
                if self.calibrator is not None:  # corrections are undone by restore()
                    self.calibrator.apply(self.backend, dense)
                    if self.file_sizer is not None:  # the file stores the corrected tensors
                        corrected = self.calibrator.corrected_tensors(self.backend)
                for a, b, sub in self.parts(split):
                    out.append(self._predict(sub, shared))
                    correct += int((out[-1].argmax(axis=1) == labels[a:b]).sum())
                    scored = b
                    if stop_below is not None and (correct + n - scored) / n < stop_below:
                        break
        finally:
            self.backend.restore()
        logits = np.concatenate(out) if shared else reference
        scored = scored if shared else n
        seconds = time.perf_counter() - start
        acc = accuracy_from_logits(logits, labels[:scored], seconds)
        hurt = damage(reference[:scored], logits, labels[:scored])
        return EvalResult(
            key=candidate.key(),
            split=split,
            accuracy=acc.top1,
            top5=acc.top5,
            n_images=n,
            correct=int(acc.correct.sum()),
            seconds=time.perf_counter() - start,
            bits_fixed={n: layer_fixed_bits(n, sw) for n, sw in shared.items()},
            bits_coded={n: self.coded_bits(n, k) for n, k in k_map.items()},
            file_bytes=self.file_bytes(candidate, corrected),
            kl=hurt.kl,
            flip=hurt.flip,
            cross_entropy=hurt.cross_entropy,
            n_scored=scored,
        )
