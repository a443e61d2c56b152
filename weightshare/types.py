"""Value types every layer shares: shared weights, layers, accuracies, evaluation results.

This module sits at the bottom of the package (docs/layout.md): it imports numpy and the
standard library only, so codecs, backends, networks and the exploration can all speak these
types without importing one another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

K_MAX = 65536
"""Largest number of shared values per group (indices fit in uint16)."""

GRANULARITIES = ("layer", "channel")
"""One codebook per layer, or one per output channel."""

LAYER_KINDS = ("conv", "depthwise_conv", "linear")
"""The clusterable layer kinds a backend reports."""


@dataclass(frozen=True, eq=False)
class SharedWeights:
    """One weight tensor after weight sharing: a codebook per group plus one index per weight.

    The arrays are read-only. Equality is identity (arrays have no single truth value).

    Attributes:
        codebook: float32, shape ``(G, k_eff)``. ``G == 1`` for ``"layer"`` granularity and
            ``G == weights.shape[0]`` (output channels) for ``"channel"``. Each row is sorted
            ascending; a channel whose codebook needs fewer than ``k_eff`` entries is padded
            by repeating its largest centroid, and no index points at a padding entry.
        indices: shape ``weights.shape``, uint8 when ``k <= 256`` else uint16. Each weight's
            position in the codebook row of its group.
        inertia: sum over all weights of ``(w - dequantize())**2``, in float64 (units of w**2).
        k: the requested number of shared values per group.
        granularity: ``"layer"`` or ``"channel"``.
        method: the initialisation whose result was kept: ``"linear"``, ``"quantile"``,
            ``"kmeans++"``, ``"exact"`` (``k`` >= number of distinct values, every value keeps
            its own entry), or, for ``"channel"``, ``"mixed"`` when the groups differ.
    """

    codebook: np.ndarray
    indices: np.ndarray
    inertia: float
    k: int
    granularity: str
    method: str

    @property
    def groups(self) -> int:
        """Number of codebooks ``G`` (1 per layer, or the number of output channels)."""
        return self.codebook.shape[0]

    @property
    def k_eff(self) -> int:
        """Width of the codebook actually stored (``<= k``)."""
        return self.codebook.shape[1]

    def dequantize(self) -> np.ndarray:
        """The shared weights: float32, shape ``indices.shape``, ``codebook[g, indices]``."""
        rows = np.arange(self.groups)[:, None]
        flat = self.indices.reshape(self.groups, -1)
        return self.codebook[rows, flat].reshape(self.indices.shape)


@dataclass(frozen=True)
class LayerInfo:
    """A clusterable layer.

    Attributes:
        name: canonical name, unique within the model (e.g. ``layer1.0.conv1``).
        shape: weight shape in the canonical layout.
        kind: one of ``LAYER_KINDS``.
        weight_name: the model file's own name of the weight where it differs in kind from
            ``name`` (the ONNX initializer, e.g. ``sequential_1/dense_1/Cast/ReadVariableOp:0``
            for ``dense_1``), else None; reported so a user can map a layer back. Not compared.
    """

    name: str
    shape: tuple[int, ...]
    kind: str
    weight_name: str | None = field(default=None, compare=False)

    @property
    def n_weights(self) -> int:
        """Number of scalar weights in the tensor."""
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Accuracy:
    """Result of evaluating a model on a split.

    Attributes:
        top1: fraction of images whose top-scoring class is the label, in [0, 1].
        top5: fraction whose label is among the five top-scoring classes, in [0, 1].
        n_images: images scored.
        seconds: wall time of the forward passes.
        correct: bool array (n_images,), per-image top-1 correctness, for paired comparisons.
    """

    top1: float
    top5: float
    n_images: int
    seconds: float
    correct: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class ModelDescription:
    """What an evaluator holds, as the exploration's driver sees it (picklable for Ray).

    Attributes:
        backend: the backend's registry name (``pytorch``, ``onnxruntime``, ``tensorflow``).
        layers: the clusterable layers in model order.
        n_unclustered: scalars the model stores outside clusterable weights.
        splits: split name -> number of images.
    """

    backend: str
    layers: tuple[LayerInfo, ...]
    n_unclustered: int
    splits: dict[str, int]

    @property
    def n_weights(self) -> dict[str, int]:
        """Layer name -> number of weights, in model order."""
        return {layer.name: layer.n_weights for layer in self.layers}


@dataclass(frozen=True)
class EvalResult:
    """One candidate scored on one split.

    Attributes:
        key: the candidate's :meth:`Candidate.key`.
        split: split name (``search``, ``search_full`` or ``holdout``).
        accuracy: top-1 in [0, 1].
        top5: top-5 in [0, 1].
        n_images: images in the split.
        correct: images whose top-1 was right (accuracy * images_scored, exactly).
        seconds: wall time of swap + forward + restore, in seconds.
        bits_fixed: layer -> fixed-length bits (indices + fp32 codebook) of each clustered
            layer of the candidate.
        bits_coded: layer -> coded bits (the model file's ANS-coded indices, their table
            and the codebook) of each clustered layer.
        file_bytes: exact size in bytes of the model file ``--mode encode`` writes for the
            candidate (manifest, every tensor), or None when the evaluator has no
            :class:`~weightshare.codecs.model.ModelFileSizer` (models that are not written as
            weightshare model files).
        node: id of the Ray node that scored it (hex), or None when scored in the driver.
        kl: mean KL divergence (nats) of the softmax outputs from the fp32 model's on the
            same images (0 for the fp32 model itself; NaN when not measured).
        flip: fraction of images whose top-1 class differs from the fp32 model's.
        cross_entropy: mean cross-entropy (nats) of the outputs against the labels.
        n_scored: images actually scored (None: all ``n_images``). Fewer when scoring stopped
            early because the candidate had failed its target for certain; ``accuracy``,
            ``top5``, ``correct`` and the damage figures are then over those images only.
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
    file_bytes: int | None = None
    node: str | None = None
    kl: float = math.nan
    flip: float = math.nan
    cross_entropy: float = math.nan
    n_scored: int | None = None

    @property
    def images_scored(self) -> int:
        """Images actually scored."""
        return self.n_images if self.n_scored is None else self.n_scored

    @property
    def stopped_early(self) -> bool:
        """True when scoring stopped before the end of the split (a certain failure)."""
        return self.images_scored < self.n_images
