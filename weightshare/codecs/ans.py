"""The ``ans`` index coder: constriction's rANS under exact order-0 index counts.

Chunk layout::

    byte 0      scope: 0 = one model for the layer, 1 = one model per codebook group
    byte 1      w: bit width of the stored counts, in [0, 40]
    ...         T tables x (k - 1) counts, w bits each (bitpack, MSB first), zero-padded
                to a byte; T = 1 (layer) or G (group). The count of symbol k - 1 is implied:
                the table's total (G * n or n) minus the others.
    ...         the rANS words: uint32 little-endian (constriction's ``AnsCoder``, 24-bit
                probabilities, ``Categorical(counts, perfect=False)``), the groups in order.

The model is the exact histogram of the indices, so the stream costs the empirical entropy
``sum n_t H(p_t)`` plus the table, plus at most about 64 bits for the coder's final state and
word alignment. With ``G > 1`` the encoder keeps the scope whose estimated size (entropy +
table) is smaller; ties go to the layer.
"""

from __future__ import annotations

import constriction
import numpy as np

from weightshare.codecs.bitpack import pack_bits, packed_size, padding_is_zero, unpack_bits
from weightshare.codecs.container import FormatError
from weightshare.codecs.counts import group_counts, order0_bits

SCOPE_LAYER, SCOPE_GROUP = 0, 1
MAX_COUNT_WIDTH = 40

_Categorical = constriction.stream.model.Categorical
_AnsCoder = constriction.stream.stack.AnsCoder


def _table_bits(tables: np.ndarray) -> int:
    width = int(tables[:, :-1].max(initial=0)).bit_length()
    return 16 + 8 * packed_size(tables[:, :-1].size, width)


def _model(counts: np.ndarray):
    return _Categorical(counts.astype(np.float64), perfect=False)


class AnsIndexCoder:
    """rANS with an exact per-layer or per-group categorical model (table counted)."""

    name = "ans"

    def encode(self, symbols: np.ndarray, k: int) -> bytes:
        groups = symbols.shape[0]
        per_group = group_counts(symbols, k)
        layer = per_group.sum(axis=0, keepdims=True)
        scope = SCOPE_LAYER
        if groups > 1:
            cost_layer = order0_bits(layer) + _table_bits(layer)
            cost_group = order0_bits(per_group) + _table_bits(per_group)
            if cost_group < cost_layer:
                scope = SCOPE_GROUP
        tables = layer if scope == SCOPE_LAYER else per_group
        stored = tables[:, :-1]
        width = int(stored.max(initial=0)).bit_length()
        coder = _AnsCoder()
        if scope == SCOPE_LAYER:
            coder.encode_reverse(symbols.reshape(-1).astype(np.int32), _model(layer[0]))
        else:
            for g in range(groups - 1, -1, -1):
                coder.encode_reverse(symbols[g].astype(np.int32), _model(per_group[g]))
        words = coder.get_compressed().astype("<u4", copy=False)
        return b"".join([bytes([scope, width]), pack_bits(stored, width), words.tobytes()])

    def decode(self, data: memoryview, groups: int, per_group: int, k: int) -> np.ndarray:
        if len(data) < 2:
            raise FormatError(f"corrupt ans index stream: {len(data)} bytes, need >= 2")
        scope, width = data[0], data[1]
        if scope not in (SCOPE_LAYER, SCOPE_GROUP) or width > MAX_COUNT_WIDTH:
            raise FormatError(f"corrupt ans index stream: scope {scope}, count width {width}")
        n_tables = 1 if scope == SCOPE_LAYER else groups
        total = groups * per_group if scope == SCOPE_LAYER else per_group
        n_stored = n_tables * (k - 1)
        table_bytes = packed_size(n_stored, width)
        if len(data) < 2 + table_bytes:
            raise FormatError("corrupt ans index stream: truncated count table")
        table = data[2 : 2 + table_bytes]
        if not padding_is_zero(table, n_stored * width):
            raise FormatError("corrupt ans index stream: non-zero padding after the count table")
        stored = unpack_bits(table, width, n_stored).astype(np.int64).reshape(n_tables, k - 1)
        sums = stored.sum(axis=1)
        if (sums > total).any():
            raise FormatError("corrupt ans index stream: counts exceed the number of indices")
        counts = np.concatenate([stored, (total - sums)[:, None]], axis=1)
        body = data[2 + table_bytes :]
        if len(body) % 4:
            raise FormatError("corrupt ans index stream: not a whole number of 32-bit words")
        words = np.frombuffer(body, dtype="<u4").astype(np.uint32)
        try:
            coder = _AnsCoder(words)
            if scope == SCOPE_LAYER:
                out = coder.decode(_model(counts[0]), groups * per_group).reshape(groups, -1)
            else:
                out = np.empty((groups, per_group), dtype=np.int32)
                for g in range(groups):
                    out[g] = coder.decode(_model(counts[g]), per_group)
            finished = coder.is_empty()
        except (ValueError, KeyError, RuntimeError, OverflowError) as exc:
            raise FormatError(f"corrupt ans index stream ({exc})") from None
        if not finished:
            raise FormatError("corrupt ans index stream: data left after the last index")
        return out
