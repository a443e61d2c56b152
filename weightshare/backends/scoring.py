"""Scoring shared by the numpy-facing backends (ONNX Runtime, Keras): logits -> Accuracy."""

from __future__ import annotations

import numpy as np

from weightshare.types import Accuracy


def accuracy_from_logits(logits: np.ndarray, labels: np.ndarray, seconds: float) -> Accuracy:
    """Top-1/top-5 of ``logits`` against ``labels``.

    Args:
        logits: float array (N, classes); any monotonic score (probabilities work too).
        labels: int64 (N,).
        seconds: wall time of the forward passes, reported as is.
    """
    n = int(labels.shape[0])
    k = min(5, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    correct = top[:, 0] == labels
    return Accuracy(
        top1=float(correct.sum()) / n,
        top5=float((top == labels[:, None]).any(axis=1).sum()) / n,
        n_images=n,
        seconds=seconds,
        correct=correct,
    )
