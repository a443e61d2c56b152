"""The backend contract: what the exploration needs from a framework, and nothing more.

A backend wraps one loaded model. Weights cross the boundary as numpy float32 arrays in the
canonical layout ``(out, in/groups, kh, kw)`` for convolutions and ``(out, in)`` for linear
layers (axis 0 is always the output channel), under framework-neutral canonical layer names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from weightshare.networks.datasets import Split

LAYER_KINDS = ("conv", "depthwise_conv", "linear")


@dataclass(frozen=True)
class LayerInfo:
    """A clusterable layer.

    Attributes:
        name: canonical name, unique within the model (e.g. ``layer1.0.conv1``).
        shape: weight shape in the canonical layout.
        kind: one of ``LAYER_KINDS``.
    """

    name: str
    shape: tuple[int, ...]
    kind: str

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


class Backend(Protocol):
    """What every framework backend provides (see tests/backends for the conformance suite)."""

    name: str

    def layers(self) -> list[LayerInfo]:
        """The clusterable layers (conv incl. depthwise, linear) in model order."""
        ...

    def get_weights(self, name: str) -> np.ndarray:
        """A float32 copy of the pristine weight tensor of layer ``name`` (canonical layout)."""
        ...

    def current_weights(self, name: str) -> np.ndarray:
        """A float32 copy of the weights layer ``name`` holds now (after any set_weights)."""
        ...

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Overwrite the named layers' weights (canonical layout, shapes must match)."""
        ...

    def restore(self) -> None:
        """Put back the pristine weights, bit for bit."""
        ...

    def evaluate(self, split: Split) -> Accuracy:
        """Top-1/top-5 accuracy of the current weights on ``split`` (deterministic)."""
        ...

    def n_unclustered(self) -> int:
        """Scalars the model stores outside clusterable weights (biases, BatchNorm, ...)."""
        ...
