"""The fixed-point residual grid of ``ResEntropy16bits``: round to nearest, with escapes.

A float residual ``r = cur - prev`` (computed in float64) becomes the integer level
``l = round(r / step)`` with ``step = 2**step_exp`` (default ``2**-15``, the seed's grid), and
the decoder rebuilds ``rec = dtype(prev + l * step)`` (float64 sum, one rounding to the tensor's
dtype; IEEE arithmetic, so every platform rebuilds the same bits). Levels live on a signed
``level_bits``-bit grid, ``|l| <= 2**(level_bits-1) - 1`` (default 16 bits: the seed's range
``|r| < 1`` at the default step, without its "-0" code and with rounding instead of truncation).

A value is **escaped** (stored exactly, in its dtype) when ``cur`` or ``prev`` is not finite,
when ``|l|`` is off the grid, or when the rounding of ``rec`` to the dtype would push the error
past ``step / 2`` (then the other neighbouring level is tried first). So every value either
comes back exactly or with ``|cur - rec| <= step / 2``: the bound holds for every non-escaped
value, checked by the encoder in float64 (exact for float16/float32 tensors).

Steps are powers of two so that ``l * step`` is exact.
"""

from __future__ import annotations

import numpy as np

DEFAULT_STEP_EXP = -15
DEFAULT_LEVEL_BITS = 16
STEP_EXP_RANGE = (-60, 20)
LEVEL_BITS_RANGE = (2, 31)


def max_level(level_bits: int) -> int:
    """Largest ``|l|`` on a ``level_bits`` grid: ``2**(level_bits-1) - 1``."""
    return (1 << (level_bits - 1)) - 1


def reconstruct(prev: np.ndarray, levels: np.ndarray, step_exp: int) -> np.ndarray:
    """``dtype(prev + levels * 2**step_exp)``, flat, in ``prev``'s dtype (native order).

    prev: float array ``(n,)`` (any float dtype); levels: integer ``(n,)``.
    """
    total = levels * np.float64(2.0**step_exp)  # exact: a power of two times |level| < 2**31
    total += prev
    return total.astype(prev.dtype.newbyteorder("="))


def quantize(
    cur: np.ndarray, prev: np.ndarray, step_exp: int, level_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Levels and escape mask of the residual ``cur - prev``.

    Args:
        cur, prev: float arrays ``(n,)`` of the same dtype.
        step_exp: ``step = 2**step_exp``.
        level_bits: grid width in bits.

    Returns:
        ``(levels, escaped)``: int64 ``(n,)`` (0 where escaped) and bool ``(n,)``.
    """
    limit = max_level(level_bits)
    half = np.ldexp(1.0, step_exp - 1)
    cur64, prev64 = cur.astype(np.float64), prev.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.ldexp(cur64 - prev64, -step_exp)
        q = np.rint(scaled)
        ok = np.isfinite(cur64) & np.isfinite(prev64) & (np.abs(q) <= limit)
    levels = np.where(ok, q, 0.0).astype(np.int64)
    err = np.abs(cur64 - reconstruct(prev, levels, step_exp).astype(np.float64))
    bad = ok & (err > half)
    if bad.any():  # the rounding of rec to the dtype crossed step / 2: try the other neighbour
        idx = np.flatnonzero(bad)
        other = levels[idx] + np.where(scaled[idx] > levels[idx], 1, -1)
        rec = reconstruct(prev[idx], other, step_exp).astype(np.float64)
        fixed = (np.abs(other) <= limit) & (np.abs(cur64[idx] - rec) <= half)
        levels[idx[fixed]] = other[fixed]
        bad[idx[fixed]] = False
        ok &= ~bad
        levels[bad] = 0
    return levels, ~ok
