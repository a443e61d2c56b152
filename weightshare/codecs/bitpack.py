"""Fixed-width bit packing of unsigned integers (MSB first, zero padding to a whole byte).

``pack_bits(values, w)`` writes each value as ``w`` bits, most significant bit first, value after
value, and pads the last byte with zero bits: ``ceil(n * w / 8)`` bytes. ``unpack_bits`` reverses
it. Widths that divide 8, and 8 and 16, take arithmetic fast paths; the others go through a bit
matrix (``n * 8 * B`` bytes of scratch, ``B`` the byte width of the value type).
"""

from __future__ import annotations

import numpy as np

MAX_WIDTH = 64

_BYTE_TYPES = ((1, ">u1"), (2, ">u2"), (4, ">u4"), (8, ">u8"))


def packed_size(n: int, width: int) -> int:
    """Bytes that ``n`` values of ``width`` bits occupy: ``ceil(n * width / 8)``."""
    return (n * width + 7) // 8


def pack_bits(values: np.ndarray, width: int) -> bytes:
    """Pack non-negative integers into ``width`` bits each.

    Args:
        values: unsigned or non-negative integer array, any shape (flattened in C order); every
            value must be ``< 2**width`` (trusted, not checked).
        width: bits per value, in ``[0, 64]``; ``0`` gives ``b""``.

    Returns:
        ``packed_size(values.size, width)`` bytes.
    """
    flat = np.ascontiguousarray(values).reshape(-1)
    if width == 0 or flat.size == 0:
        return b""
    if width == 8:
        return flat.astype(np.uint8).tobytes()
    if width == 16:
        return flat.astype(">u2").tobytes()
    if 8 % width == 0:
        per = 8 // width
        padded = np.zeros(-(-flat.size // per) * per, dtype=np.uint8)
        padded[: flat.size] = flat
        shifts = np.arange(8 - width, -1, -width, dtype=np.uint8)
        return np.bitwise_or.reduce(padded.reshape(-1, per) << shifts, axis=1).tobytes()
    nbytes, dtype = next((b, t) for b, t in _BYTE_TYPES if 8 * b >= width)
    as_bytes = flat.astype(dtype).view(np.uint8).reshape(-1, nbytes)
    bits = np.unpackbits(as_bytes, axis=1)[:, 8 * nbytes - width :]
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack_bits(data: bytes | memoryview | np.ndarray, width: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: the first ``count`` values of ``width`` bits.

    Args:
        data: at least ``packed_size(count, width)`` bytes (only those are read).
        width: bits per value, in ``[0, 64]``.
        count: number of values, ``>= 0``.

    Returns:
        Shape ``(count,)``: uint8 for ``width <= 8``, uint16 up to 16, uint32 up to 32, else
        uint64 (native byte order).

    Raises:
        ValueError: ``data`` holds fewer than ``packed_size(count, width)`` bytes.
    """
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    need = packed_size(count, width)
    if raw.size < need:
        raise ValueError(f"{count} values of {width} bits need {need} bytes; got {raw.size}")
    raw = raw[:need]
    nbytes, dtype = next((b, t) for b, t in _BYTE_TYPES if 8 * b >= max(width, 1))
    native = np.dtype(dtype).newbyteorder("=")
    if width == 0 or count == 0:
        return np.zeros(count, dtype=native)
    if width == 8:
        return raw.copy()
    if width == 16:
        return raw.view(">u2").astype(np.uint16)
    if 8 % width == 0:
        shifts = np.arange(8 - width, -1, -width, dtype=np.uint8)
        mask = np.uint8((1 << width) - 1)
        return ((raw[:, None] >> shifts) & mask).reshape(-1)[:count]
    bits = np.unpackbits(raw)[: count * width].reshape(count, width)
    full = np.zeros((count, 8 * nbytes), dtype=np.uint8)
    full[:, 8 * nbytes - width :] = bits
    return np.packbits(full, axis=1).view(dtype).reshape(-1).astype(native)


def padding_is_zero(data: bytes | memoryview | np.ndarray, used_bits: int) -> bool:
    """True when every bit of ``data`` after the first ``used_bits`` is zero.

    ``data`` must hold exactly ``ceil(used_bits / 8)`` bytes (the caller checks the length).
    """
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    spare = 8 * raw.size - used_bits
    if spare <= 0 or raw.size == 0:
        return True
    return int(raw[-1]) & ((1 << spare) - 1) == 0
