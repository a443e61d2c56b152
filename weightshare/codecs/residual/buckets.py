"""Log buckets: an unsigned integer ``z`` as a bucket symbol (entropy coded) plus raw low bits.

``z < 4`` is its own symbol with no extra bits. Otherwise, with ``e = floor(log2 z)`` (2..63),
the symbol is ``4 + 4 (e - 2) + s`` where ``s`` is the two bits below the leading one, and the
``e - 2`` bits below those are sent raw. Four buckets per octave keep the raw bits close to
uniform (within an octave a Laplace-like density falls by at most a factor ``2^(1/4)`` per
bucket), so coding the symbol with its exact histogram costs within a few hundredths of a bit of
the order-0 entropy of ``z``, while the table stays small (at most 252 symbols).

Symbols of a ``k``-bit value: ``symbols_for_bits(k)`` (``z < 2**k``): 124 for 32 bits, 60 for
16 bits.
"""

from __future__ import annotations

from functools import cache

import numpy as np

N_SYMBOLS = 252  # z < 2**64
_U64 = np.uint64

_T = np.arange(N_SYMBOLS)
_E = np.where(_T < 4, 0, (_T - 4) // 4 + 2)
WIDTHS = np.where(_T < 4, 0, _E - 2).astype(np.uint8)
"""Raw bits that follow each symbol, uint8 ``(252,)``."""
BASES = np.array(
    [t if t < 4 else (4 + (t - 4) % 4) << (int(e) - 2) for t, e in zip(_T, _E, strict=True)],
    dtype=_U64,
)
"""Smallest ``z`` of each symbol, uint64 ``(252,)``."""


def _floor_log2(z: np.ndarray) -> np.ndarray:
    """``floor(log2 z)`` of unsigned ``z`` (int64; -1023 for 0 when ``z < 2**53``).

    Read from the exponent of float64(z): exact below 2**53; above, the conversion may round up
    to the next power of two, which is then undone.
    """
    e = (z.astype(np.float64).view(np.uint64) >> _U64(52)).astype(np.int64) - 1023
    if z.dtype.itemsize == 8:
        high = e > 52
        if high.any():
            e[high] -= (z[high] >> e[high].astype(_U64)) == 0
    return e


def to_buckets(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split unsigned ``z`` ``(n,)`` into symbols (int32), raw-bit widths (uint8), raw bits.

    ``z`` of up to 32 bits is handled in uint32 (raw bits uint32), wider in uint64.
    """
    z = np.ascontiguousarray(z).reshape(-1)
    z = z.astype(np.uint32 if z.dtype.itemsize <= 4 else _U64, copy=False)
    e = np.maximum(_floor_log2(z), 1)  # 0..3 fall out of the same formula with e = 1
    shift = (e - 2).clip(0).astype(z.dtype)
    symbols = (4 * e - 4).astype(np.int32) + ((z >> shift) & z.dtype.type(3)).astype(np.int32)
    offsets = z & ((z.dtype.type(1) << shift) - z.dtype.type(1))
    return symbols, shift.astype(np.uint8), offsets


def from_buckets(symbols: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_buckets`: uint64 ``z`` from symbols (< 252) and their raw bits."""
    return BASES[symbols] + offsets.astype(_U64, copy=False)


@cache
def symbols_for_bits(bits: int) -> int:
    """Number of symbols that values ``z < 2**bits`` use (``bits`` in [2, 64])."""
    return int(to_buckets(np.array([(1 << bits) - 1], dtype=_U64))[0][0]) + 1
