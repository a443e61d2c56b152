"""How far a candidate's outputs moved from the fp32 model's, on the same images.

Top-1 accuracy on a few hundred images is too coarse to rank one-layer changes (one image is
0.2 points on 500 images; ``shared/research/search_signal.md``). The mean KL divergence of the
softmax outputs from the fp32 model's reproduces the whole-split damage curves on 500 images, so
every evaluation reports it, with the flip rate and the cross-entropy, beside top-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Damage:
    """Damage figures of one evaluation, means over the images scored.

    Attributes:
        kl: mean KL(p_fp32 || p_candidate) of the softmax outputs, in nats (>= 0).
        flip: fraction of images whose top-1 class differs from the fp32 model's, in [0, 1].
        cross_entropy: mean cross-entropy of the candidate's softmax against the labels, nats.
    """

    kl: float
    flip: float
    cross_entropy: float


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64; ``logits`` (N, classes) -> (N, classes)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def per_image(
    reference: np.ndarray, logits: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image KL (nats), flip (bool) and cross-entropy (nats), each of shape (N,).

    Args:
        reference: fp32 model logits, (N, classes).
        logits: the candidate's logits on the same images, (N, classes).
        labels: int (N,) true classes.
    """
    if reference.shape != logits.shape:
        raise ValueError(f"logits shape {logits.shape} != reference shape {reference.shape}")
    ref, cand = log_softmax(reference), log_softmax(logits)
    kl = (np.exp(ref) * (ref - cand)).sum(axis=1)
    flip = reference.argmax(axis=1) != logits.argmax(axis=1)
    ce = -cand[np.arange(len(labels)), np.asarray(labels, np.int64)]
    return np.maximum(kl, 0.0), flip, ce


def damage(reference: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> Damage:
    """Mean KL, flip rate and cross-entropy of ``logits`` against the fp32 ``reference``
    (shapes as in :func:`per_image`)."""
    kl, flip, ce = per_image(reference, logits, labels)
    return Damage(float(kl.mean()), float(flip.mean()), float(ce.mean()))
