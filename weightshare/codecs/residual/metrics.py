"""How far a reconstructed state dict is from the original (RMSE, max error, exactness)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Distortion:
    """Error of a reconstruction over every floating tensor (float64 arithmetic).

    Attributes:
        rmse: root mean squared error over all floating scalars.
        max_abs_err: largest absolute error (0 when exact).
        n_float: floating scalars compared.
        exact: every tensor (floating or not) equal bit for bit.
        n_changed_other: non-floating scalars that differ (0 for every method here).
    """

    rmse: float
    max_abs_err: float
    n_float: int
    exact: bool
    n_changed_other: int


def distortion(original: Mapping[str, np.ndarray], rebuilt: Mapping[str, np.ndarray]) -> Distortion:
    """Compare ``rebuilt`` with ``original`` (same names, shapes, dtypes; trusted).

    Positions that are NaN in both, or equal (infinities included), count as error 0.
    """
    squared, worst, n_float, changed, exact = 0.0, 0.0, 0, 0, True
    for name, value in original.items():
        a, b = np.asarray(value), np.asarray(rebuilt[name])
        if exact and a.tobytes() != b.tobytes():
            exact = False
        if not np.issubdtype(a.dtype, np.floating):
            changed += int(np.count_nonzero(a != b))
            continue
        x, y = a.astype(np.float64).reshape(-1), b.astype(np.float64).reshape(-1)
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        with np.errstate(invalid="ignore"):
            err = np.where(same, 0.0, np.abs(x - y))
        err = np.where(np.isnan(err), np.inf, err)
        squared += float(np.dot(err, err)) if err.size else 0.0
        worst = max(worst, float(err.max(initial=0.0)))
        n_float += err.size
    rmse = float(np.sqrt(squared / n_float)) if n_float else 0.0
    return Distortion(rmse, worst, n_float, exact, changed)
