"""The backend contract: what the exploration needs from a framework, and nothing more.

A backend wraps one loaded model. Weights cross the boundary as numpy float32 arrays in the
canonical layout ``(out, in/groups, kh, kw)`` for convolutions and ``(out, in)`` for linear
layers (axis 0 is always the output channel), under framework-neutral canonical layer names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from weightshare.networks.datasets import Split
from weightshare.types import Accuracy, LayerInfo


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
