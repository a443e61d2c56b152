"""Order-0 index statistics shared by the entropy coders and the size model (numpy only)."""

from __future__ import annotations

import numpy as np


def group_counts(symbols: np.ndarray, k: int) -> np.ndarray:
    """Index histogram per group: int64 ``(G, k)`` from integer symbols ``(G, n)``."""
    groups = symbols.shape[0]
    offsets = (np.arange(groups, dtype=np.int64) * k)[:, None]
    flat = (symbols.astype(np.int64) + offsets).reshape(-1)
    return np.bincount(flat, minlength=groups * k).reshape(groups, k)


def order0_bits(counts: np.ndarray) -> float:
    """Sum over rows of ``n_t * H(p_t)`` in bits, for an int count array ``(T, k)``.

    ``H`` is the empirical order-0 entropy of row ``t`` (bits per index), ``n_t`` its total;
    unused entries cost nothing.
    """
    totals = counts.sum(axis=1, keepdims=True)
    return float(np.sum(counts * np.log2(totals / np.maximum(counts, 1))))
