"""Variable-width bit packing: value ``i`` takes ``widths[i]`` bits, LSB first, back to back.

The stream is a little-endian sequence of 64-bit words read as one long bit string: value ``i``
occupies bits ``[p_i, p_i + widths[i])`` with ``p_i = widths[0] + ... + widths[i-1]``, its least
significant bit first. Only ``ceil(sum(widths) / 8)`` bytes are kept; the padding bits of the last
byte are zero. Everything is vectorised (no per-value Python loop), about 10 numpy passes.
"""

from __future__ import annotations

import numpy as np

MAX_WIDTH = 64
_U64 = np.uint64


def _layout(widths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(64-bit word index, bit offset in the word as uint64, total bits) of every value."""
    ends = np.cumsum(widths, dtype=np.int64)
    total = int(ends[-1]) if ends.size else 0
    starts = ends - widths
    return starts >> 6, (starts & 63).view(_U64), total


def packed_bytes(widths: np.ndarray) -> int:
    """Bytes :func:`pack_varbits` writes for these widths: ``ceil(sum(widths) / 8)``."""
    return (int(np.sum(widths, dtype=np.int64)) + 7) // 8


def pack_varbits(values: np.ndarray, widths: np.ndarray) -> bytes:
    """Pack ``values[i]`` into ``widths[i]`` bits.

    Args:
        values: unsigned ints ``(n,)``; each must be ``< 2**widths[i]`` (trusted; 0 when the
            width is 0).
        widths: uint8 ``(n,)`` in ``[0, 64]``.

    Returns:
        ``packed_bytes(widths)`` bytes.
    """
    values = np.ascontiguousarray(values).reshape(-1).astype(_U64, copy=False)
    widths = np.asarray(widths).reshape(-1)
    word, bit, total = _layout(widths)
    if total == 0:
        return b""
    n_words = (total + 63) // 64
    words = np.zeros(n_words + 2, dtype=_U64)
    # values starting in the same word have disjoint bits: OR them together per word. NumPy
    # shifts by >= 64 give 0, so the bits that spill into the next word need no mask.
    changes = np.flatnonzero(word[1:] != word[:-1])
    first = np.empty(changes.size + 1, dtype=changes.dtype)
    first[0] = 0
    np.add(changes, 1, out=first[1:])
    targets = word[first]
    words[targets] = np.bitwise_or.reduceat(values << bit, first)
    words[targets + 1] |= np.bitwise_or.reduceat(values >> (_U64(64) - bit), first)
    return words[:n_words].astype("<u8", copy=False).tobytes()[: (total + 7) // 8]


def unpack_varbits(data: bytes | memoryview, widths: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_varbits`.

    Args:
        data: exactly ``packed_bytes(widths)`` bytes (the caller checks the length).
        widths: uint8 ``(n,)`` in ``[0, 64]``.

    Returns:
        uint64 ``(n,)``.
    """
    widths = np.asarray(widths).reshape(-1)
    word, bit, total = _layout(widths)
    if total == 0:
        return np.zeros(widths.size, dtype=_U64)
    n_words = (total + 63) // 64
    raw = np.zeros(8 * (n_words + 2), dtype=np.uint8)
    raw[: (total + 7) // 8] = np.frombuffer(data, dtype=np.uint8, count=(total + 7) // 8)
    words = raw.view("<u8").astype(_U64, copy=False)
    value = (words[word] >> bit) | (words[word + 1] << (_U64(64) - bit))
    return value & ((_U64(1) << widths.astype(_U64)) - _U64(1))


def padding_is_zero(data: bytes | memoryview, widths: np.ndarray) -> bool:
    """True when the bits after the last value (up to the byte boundary) are zero."""
    total = int(np.asarray(widths).astype(np.int64).sum())
    spare = (-total) % 8
    if spare == 0 or not len(data):
        return True
    return (data[-1] >> (8 - spare)) == 0
