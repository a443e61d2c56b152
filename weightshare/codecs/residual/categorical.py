"""Symbols under their exact order-0 histogram, rANS-coded (constriction 0.5.0).

Chunk layout (a ``symbols`` chunk of the residual tensor codecs)::

    2 bytes   m: table size, uint16 LE = 1 + the largest symbol present (0 when n == 0)
    1 byte    w: bit width of the stored counts, in [0, 40]
    ...       counts of symbols 0..m-2, w bits each, MSB first (bitpack), zero padded to a
              byte; the count of symbol m-1 is implied (n minus the others) and must be > 0
    ...       the rANS words, uint32 LE (``AnsCoder``, ``Categorical(counts, perfect=False)``);
              empty when a single symbol is present (its count is n)

The stream costs the empirical entropy ``n H(p)`` plus the table plus at most about 64 bits.
"""

from __future__ import annotations

import constriction
import numpy as np

from weightshare.codecs.bitpack import pack_bits, packed_size, padding_is_zero, unpack_bits
from weightshare.codecs.container import FormatError

MAX_COUNT_WIDTH = 40
_HEADER = 3
_Categorical = constriction.stream.model.Categorical
_AnsCoder = constriction.stream.stack.AnsCoder


def encode_symbols(symbols: np.ndarray) -> bytes:
    """The chunk for int32 ``symbols`` ``(n,)``, all in ``[0, 65535)``."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)
    if symbols.size == 0:
        return bytes(_HEADER)
    counts = np.bincount(symbols)
    stored = counts[:-1]
    width = int(stored.max(initial=0)).bit_length()
    head = len(counts).to_bytes(2, "little") + bytes([width]) + pack_bits(stored, width)
    if np.count_nonzero(counts) == 1:
        return head
    coder = _AnsCoder()
    coder.encode_reverse(symbols, _Categorical(counts.astype(np.float64), perfect=False))
    return head + coder.get_compressed().astype("<u4", copy=False).tobytes()


def decode_symbols(data: memoryview | bytes, n: int, max_symbols: int) -> np.ndarray:
    """Inverse of :func:`encode_symbols`: int32 ``(n,)``, every symbol ``< max_symbols``.

    Raises:
        FormatError: a malformed table, counts that do not add up to ``n``, a stream that is
            not whole words, or words left over.
    """
    data = memoryview(data).cast("B")
    if len(data) < _HEADER:
        raise FormatError(f"corrupt symbol stream: {len(data)} bytes, need >= {_HEADER}")
    m, width = int.from_bytes(data[:2], "little"), data[2]
    if n == 0:
        if m != 0 or width != 0 or len(data) != _HEADER:
            raise FormatError("corrupt symbol stream: an empty tensor has an empty table")
        return np.zeros(0, dtype=np.int32)
    if not 0 < m <= max_symbols or width > MAX_COUNT_WIDTH:
        raise FormatError(
            f"corrupt symbol stream: table of {m} symbols (1..{max_symbols} allowed), "
            f"count width {width}"
        )
    table_bytes = packed_size(m - 1, width)
    if len(data) < _HEADER + table_bytes:
        raise FormatError("corrupt symbol stream: truncated count table")
    table = data[_HEADER : _HEADER + table_bytes]
    if not padding_is_zero(table, (m - 1) * width):
        raise FormatError("corrupt symbol stream: non-zero padding after the count table")
    stored = unpack_bits(table, width, m - 1).astype(np.int64)
    last = n - int(stored.sum())
    if last <= 0:
        raise FormatError(f"corrupt symbol stream: the counts do not add up to {n} symbols")
    counts = np.append(stored, last)
    body = data[_HEADER + table_bytes :]
    if np.count_nonzero(counts) == 1:
        if len(body):
            raise FormatError("corrupt symbol stream: data after a one-symbol table")
        return np.full(n, m - 1, dtype=np.int32)
    if len(body) % 4:
        raise FormatError("corrupt symbol stream: not a whole number of 32-bit words")
    words = np.frombuffer(body, dtype="<u4").astype(np.uint32)
    try:
        coder = _AnsCoder(words)
        out = coder.decode(_Categorical(counts.astype(np.float64), perfect=False), n)
        finished = coder.is_empty()
    except (ValueError, KeyError, RuntimeError, OverflowError) as exc:
        raise FormatError(f"corrupt symbol stream ({exc})") from None
    if not finished:
        raise FormatError("corrupt symbol stream: data left after the last symbol")
    return out.astype(np.int32, copy=False)
