"""The ``fixed`` index coder: ``ceil(log2 k)`` bits per index, no table (the seed's accounting).

Chunk layout: the indices bit-packed MSB first (:mod:`weightshare.codecs.bitpack`), groups in
order, the last byte zero-padded: exactly ``ceil(G * n * ceil(log2 k) / 8)`` bytes.
"""

from __future__ import annotations

import numpy as np

from weightshare.codecs.bitpack import pack_bits, packed_size, padding_is_zero, unpack_bits
from weightshare.codecs.container import FormatError


def fixed_width(k: int) -> int:
    """Bits per index for an alphabet of ``k`` symbols: ``ceil(log2 k)``, 0 for ``k == 1``."""
    return (k - 1).bit_length()


class FixedIndexCoder:
    """Fixed-length bit packing."""

    name = "fixed"

    def encode(self, symbols: np.ndarray, k: int) -> bytes:
        return pack_bits(symbols, fixed_width(k))

    def decode(self, data: memoryview, groups: int, per_group: int, k: int) -> np.ndarray:
        width, n = fixed_width(k), groups * per_group
        if len(data) != packed_size(n, width):
            raise FormatError(
                f"corrupt fixed index stream: {len(data)} bytes, expected "
                f"{packed_size(n, width)} for {n} indices of {width} bits"
            )
        if not padding_is_zero(data, n * width):
            raise FormatError("corrupt fixed index stream: non-zero padding bits")
        out = unpack_bits(data, width, n)
        if k & (k - 1) and int(out.max()) >= k:
            raise FormatError(f"corrupt fixed index stream: an index >= k = {k}")
        return out.reshape(groups, per_group)
