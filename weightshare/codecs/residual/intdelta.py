"""Exact integer residuals between two tensors of the same dtype (the lossless path).

Every value is read as its ``k``-bit pattern (``k`` = 8 x itemsize). Floats are first mapped to
an order-preserving key (negative: all bits flipped; positive: sign bit set), so a small change
of value is a small change of key, across exponent boundaries too; integers and booleans keep
their pattern. The residual is ``key(cur) - key(prev)`` modulo ``2**k``, read as a signed
``k``-bit integer and zigzag-mapped to an unsigned one (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...).
Every step is a bijection on ``k``-bit patterns, so NaN payloads, infinities, -0.0 and
subnormals come back bit for bit.
"""

from __future__ import annotations

import numpy as np

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_INT = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def _keys(bits: np.ndarray, is_float: bool) -> np.ndarray:
    """Order-preserving keys of float bit patterns: ``u ^ (sign ? all ones : sign bit)``."""
    if not is_float:
        return bits
    k = 8 * bits.dtype.itemsize
    signed = bits.view(_INT[bits.dtype.itemsize])
    return bits ^ ((signed >> (k - 1)).view(bits.dtype) | bits.dtype.type(1 << (k - 1)))


def _unkeys(keys: np.ndarray, is_float: bool) -> np.ndarray:
    """Inverse of :func:`_keys`: ``key ^ (top bit set ? sign bit : all ones)``."""
    if not is_float:
        return keys
    k = 8 * keys.dtype.itemsize
    signed = keys.view(_INT[keys.dtype.itemsize])
    return keys ^ (~(signed >> (k - 1)).view(keys.dtype) | keys.dtype.type(1 << (k - 1)))


def _bits(array: np.ndarray) -> np.ndarray:
    size = array.dtype.itemsize
    native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    return native.reshape(-1).view(_UINT[size])


def residual_codes(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Zigzag codes of ``cur - prev`` on the key scale: unsigned ``k``-bit ints ``(n,)``.

    ``cur`` and ``prev`` have the same shape and dtype (trusted).
    """
    is_float = np.issubdtype(cur.dtype, np.floating)
    size = cur.dtype.itemsize
    delta = (_keys(_bits(cur), is_float) - _keys(_bits(prev), is_float)).view(_INT[size])
    return ((delta << 1) ^ (delta >> (8 * size - 1))).view(_UINT[size])


def apply_codes(prev: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`residual_codes`: ``cur`` (dtype and shape of ``prev``) from its codes.

    ``codes``: unsigned integers ``< 2**k`` (the caller checks the bound).
    """
    is_float = np.issubdtype(prev.dtype, np.floating)
    utype = _UINT[prev.dtype.itemsize]
    codes = codes.astype(utype, copy=False)
    delta = (codes >> utype(1)) ^ (utype(0) - (codes & utype(1)))  # zigzag inverse on k bits
    keys = _keys(_bits(prev), is_float) + delta
    native = prev.dtype.newbyteorder("=")
    return _unkeys(keys, is_float).view(native).reshape(prev.shape).copy()
