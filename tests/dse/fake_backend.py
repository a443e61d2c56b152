"""A numpy-only backend, so the exploration's core is tested without any framework.

:class:`NumpyMLP` implements the backend contract (:class:`weightshare.backends.base.Backend`)
for a three-layer perceptron on the real Fashion-MNIST images: two seeded random ReLU layers
(784 -> 256 -> 128) and a read-out layer (128 -> 10) fitted by ridge regression on 10,000
training images, in closed form (about 77 % top-1, in a second). Nothing in it imports torch,
TensorFlow or onnxruntime; the real backends keep their own conformance tests
(tests/backends).

:class:`FakeFactory` is the picklable recipe the executors call, like
:class:`weightshare.modes.loading.EvaluatorFactory`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from weightshare.dse.evaluator import Evaluator
from weightshare.networks.datasets import Split, load_split
from weightshare.types import Accuracy, LayerInfo

NAME = "numpy-fake"
HIDDEN = (256, 128)
N_FIT = 10_000  # training images the read-out is fitted on
RIDGE = 1.0


def _features(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


@lru_cache(maxsize=1)
def trained_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Layer name -> float32 weights (out, in), plus ``<name>.bias``; seeded, cached."""
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    sizes = (784, *HIDDEN)
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        name = f"fc{i + 1}"
        weights[name] = (rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)).astype(
            np.float32
        )
        weights[f"{name}.bias"] = np.zeros(n_out, np.float32)
    train = load_split("train")
    hidden = _hidden(weights, _features(train.images[:N_FIT])).astype(np.float64)
    hidden = np.hstack([hidden, np.ones((len(hidden), 1))])
    onehot = np.eye(10)[train.labels[:N_FIT]]
    gram = hidden.T @ hidden + RIDGE * np.eye(hidden.shape[1])
    readout = np.linalg.solve(gram, hidden.T @ onehot).T  # (10, HIDDEN[-1] + 1)
    name = f"fc{len(HIDDEN) + 1}"
    # on the fp16 grid: a last-bit difference of the solve (another BLAS thread count in a
    # Ray worker) would have to straddle an fp16 rounding boundary to reach the weights, so
    # every process holds the same model
    readout = readout.astype(np.float16).astype(np.float32)
    weights[name] = readout[:, :-1]
    weights[f"{name}.bias"] = readout[:, -1].copy()
    return weights


def _hidden(weights: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The random ReLU layers: float32 (N, 784) -> (N, HIDDEN[-1])."""
    for i in range(len(HIDDEN)):
        name = f"fc{i + 1}"
        x = np.maximum(x @ weights[name].T + weights[f"{name}.bias"], 0.0)
    return x


class NumpyMLP:
    """The backend contract on a numpy perceptron (see the module docstring)."""

    name = NAME

    def __init__(self, seed: int = 0) -> None:
        self._pristine = trained_weights(seed)
        self._current = {name: w.copy() for name, w in self._pristine.items()}

    def layers(self) -> list[LayerInfo]:
        return [
            LayerInfo(name, w.shape, "linear")
            for name, w in self._pristine.items()
            if not name.endswith(".bias")
        ]

    def _known(self, name: str) -> str:
        if name.endswith(".bias") or name not in self._pristine:
            raise KeyError(f"unknown layer {name!r}")
        return name

    def get_weights(self, name: str) -> np.ndarray:
        return self._pristine[self._known(name)].copy()

    def current_weights(self, name: str) -> np.ndarray:
        return self._current[self._known(name)].copy()

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        for name, w in weights.items():
            if w.shape != self._pristine[self._known(name)].shape:
                raise ValueError(f"{name}: shape {w.shape}, expected {self._pristine[name].shape}")
            self._current[name] = np.asarray(w, np.float32).copy()

    def restore(self) -> None:
        self._current = {name: w.copy() for name, w in self._pristine.items()}

    def logits(self, split: Split) -> np.ndarray:
        """float32 (N, 10) scores of the current weights."""
        last = f"fc{len(HIDDEN) + 1}"
        hidden = _hidden(self._current, _features(split.images))
        return hidden @ self._current[last].T + self._current[f"{last}.bias"]

    def predict(self, split: Split) -> np.ndarray:
        """The backend contract's logits: float32 (N, 10)."""
        return np.asarray(self.logits(split), np.float32)

    def evaluate(self, split: Split) -> Accuracy:
        logits = self.logits(split)
        top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
        correct = top5[:, 0] == split.labels
        n = len(split)
        return Accuracy(
            top1=float(correct.mean()),
            top5=float((top5 == split.labels[:, None]).any(axis=1).mean()),
            n_images=n,
            seconds=0.0,
            correct=correct,
        )

    def n_unclustered(self) -> int:
        return sum(w.size for name, w in self._pristine.items() if name.endswith(".bias"))


@dataclass(frozen=True)
class FakeFactory:
    """Builds an :class:`Evaluator` over :class:`NumpyMLP` and the real search/holdout splits.

    Attributes:
        dataset_scale: fraction of the search split the search sees (1.0: no ``search_full``).
        seed: seeds the random layers and the clustering.
    """

    dataset_scale: float = 0.05
    seed: int = 0

    def __call__(self) -> Evaluator:
        splits = {
            "search": load_split("search", dataset_scale=self.dataset_scale),
            "search_full": load_split("search"),
            "holdout": load_split("holdout"),
        }
        if self.dataset_scale == 1.0:
            del splits["search_full"]
        return Evaluator(NumpyMLP(self.seed), splits, seed=self.seed)
