"""The statistical margin of the whole-search-split confirmation (``--confirm-margin Z``).

A search drives its points to the edge of the target on the images it sees; a point that clears
the target there by less than the sampling error of the accuracy difference to fp32 passes
another sample of images only about half the time (the winner's curse). With ``Z > 0`` a point
passes its confirmation only when ``accuracy - Z * se >= target``.

``se`` is the standard error of the paired accuracy difference to fp32 on the split: with
``d_i`` in {-1, 0, +1} (candidate correct minus fp32 correct, per image),
``se = sqrt((P(d != 0) - mean(d)^2) / n) <= sqrt(P(d != 0) / n) <= sqrt(flip / n)``, since an
image whose correctness changed has its top-1 class changed. The stored figures hold the top-1
change fraction ``flip``, so the margin uses that upper bound (a slightly stricter test).
"""

from __future__ import annotations

import math


def se_bound(flip: float, n_images: int) -> float:
    """Upper bound ``sqrt(flip / n)`` of the standard error of the paired top-1 difference to
    fp32, as a fraction of the split (0.01 = one point).

    Args:
        flip: fraction of the ``n_images`` whose top-1 class differs from fp32's, in [0, 1];
            NaN (a record stored before flips were measured) counts as 1, the worst case.
        n_images: images of the split (> 0).
    """
    if math.isnan(flip):
        flip = 1.0
    return math.sqrt(flip / n_images)


def required_accuracy(target: float, flip: float, n_images: int, z: float) -> float:
    """The top-1 a score must reach to pass: ``target + z * se_bound(flip, n)``, fractions.

    ``z == 0`` gives ``target`` itself (today's rule, whatever ``flip`` is)."""
    if z == 0:
        return target
    return target + z * se_bound(flip, n_images)


def passes(accuracy: float, target: float, flip: float, n_images: int, z: float) -> bool:
    """Whether ``accuracy - z * se_bound(flip, n_images) >= target`` (fractions)."""
    return accuracy >= required_accuracy(target, flip, n_images, z)
