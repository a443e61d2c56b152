"""The ``huffman`` index coder: one canonical, length-limited Huffman code per layer.

This is Deep Compression's last stage (Han et al. 2016), kept to compare against ``ans``.
Chunk layout::

    byte 0      p: zero bits padding the last stream byte, in [0, 7]
    ...         k code lengths, 5 bits each (0 = symbol unused), zero-padded to a byte
    ...         the stream: every index's codeword, MSB first, groups in order; the
                stream holds 8 * bytes - p bits, the padding bits are zero

Codes are canonical (DEFLATE's rule: shorter codes first, then by symbol), so the lengths define
them. Lengths come from Huffman's algorithm on the exact counts, limited to ``MAX_CODE_LENGTH``
bits with the JPEG adjustment (Annex K.3); a layer using a single symbol spends 1 bit per index,
as any Huffman code must.

Decoding is vectorised with numpy: the bit stream is cut into blocks, every block is decoded
from its start in parallel (one lane per block), and Huffman's self-synchronisation lines the
lanes up with the true codeword boundaries; lanes that did not synchronise are re-run from
their predecessor's exit. After ``MAX_ROUNDS`` rounds the rest is decoded one codeword at a
time in Python, so the worst case stays linear.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from weightshare.codecs.bitpack import pack_bits, packed_size, padding_is_zero, unpack_bits
from weightshare.codecs.container import FormatError
from weightshare.codecs.counts import group_counts

MAX_CODE_LENGTH = 20
LENGTH_BITS = 5
BLOCK_BITS = 256
MAX_ROUNDS = 6
_ENCODE_BLOCK = 1 << 18  # symbols per block of the encoder's bit matrix
_DECODE_BLOCK = 1 << 16  # codewords per block of the final symbol lookup


# --- code construction ---------------------------------------------------------------------


def code_lengths(counts: np.ndarray, limit: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Length-limited Huffman code lengths.

    Args:
        counts: int array ``(k,)`` of symbol frequencies, at least one > 0.
        limit: longest allowed code, ``>= ceil(log2(symbols used))``.

    Returns:
        uint8 ``(k,)``: 0 for unused symbols; 1 for a lone used symbol. The lengths satisfy
        Kraft's equality whenever two or more symbols are used.
    """
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(counts.size, dtype=np.uint8)
    used = np.flatnonzero(counts)
    if used.size == 1:
        lengths[used[0]] = 1
        return lengths
    # Huffman's algorithm; ties broken by creation order, so the result is deterministic
    heap = [(int(counts[s]), i) for i, s in enumerate(used)]
    heapq.heapify(heap)
    parent = [0] * (2 * used.size - 1)
    node = used.size
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (c1 + c2, node))
        node += 1
    depth = [0] * (2 * used.size - 1)
    for i in range(node - 2, -1, -1):  # parents are created after their children
        depth[i] = depth[parent[i]] + 1
    per_length = np.bincount(depth[: used.size], minlength=max(limit, max(depth)) + 1)
    per_length = _limit_lengths(per_length, limit)
    # the shortest codes go to the most frequent symbols (ties: lower symbol first)
    order = used[np.lexsort((used, -counts[used]))]
    lengths[order] = np.repeat(np.arange(per_length.size), per_length)
    return lengths


def _limit_lengths(per_length: np.ndarray, limit: int) -> np.ndarray:
    """JPEG's Adjust_BITS: move codes longer than ``limit`` up, keeping Kraft's equality."""
    bits = [int(x) for x in per_length]
    for i in range(len(bits) - 1, limit, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    return np.array(bits[: limit + 1], dtype=np.int64)


def canonical_codes(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical codewords for ``lengths`` (uint8 ``(k,)``, 0 = unused).

    Returns:
        ``(codes, order)``: codes uint32 ``(k,)`` (0 where unused), and the used symbols sorted
        by (length, symbol), which is also the ascending order of their codewords.
    """
    used = np.flatnonzero(lengths)
    order = used[np.lexsort((used, lengths[used]))]
    codes = np.zeros(lengths.size, dtype=np.uint32)
    code, previous = 0, 0
    for symbol in order:
        length = int(lengths[symbol])
        code <<= length - previous
        codes[symbol] = code
        code += 1
        previous = length
    return codes, order


# --- the coder -----------------------------------------------------------------------------


class HuffmanIndexCoder:
    """Canonical Huffman with one code per tensor (the lengths table is counted)."""

    name = "huffman"

    def encode(self, symbols: np.ndarray, k: int) -> bytes:
        flat = symbols.reshape(-1)
        counts = group_counts(flat[None, :], k)[0]
        lengths = code_lengths(counts)
        codes, _ = canonical_codes(lengths)
        stream, nbits = _pack_codes(flat, codes, lengths)
        pad = (-nbits) % 8
        return b"".join([bytes([pad]), pack_bits(lengths, LENGTH_BITS), stream])

    def decode(self, data: memoryview, groups: int, per_group: int, k: int) -> np.ndarray:
        n = groups * per_group
        table_bytes = packed_size(k, LENGTH_BITS)
        if len(data) < 1 + table_bytes:
            raise FormatError("corrupt huffman index stream: truncated code-length table")
        pad = data[0]
        table = data[1 : 1 + table_bytes]
        lengths = unpack_bits(table, LENGTH_BITS, k)
        stream = np.frombuffer(data[1 + table_bytes :], dtype=np.uint8)
        nbits = 8 * stream.size - pad
        used = lengths[lengths > 0].astype(np.int64)
        if (
            pad > 7
            or nbits < 0
            or not padding_is_zero(table, k * LENGTH_BITS)
            or used.size == 0
            or int(used.max()) > MAX_CODE_LENGTH
            or int(np.sum(np.left_shift(1, MAX_CODE_LENGTH - used))) > 1 << MAX_CODE_LENGTH
        ):
            raise FormatError("corrupt huffman index stream: invalid code-length table or padding")
        if not n * int(used.min()) <= nbits <= n * int(used.max()):
            raise FormatError(
                f"corrupt huffman index stream: {nbits} bits cannot hold {n} codewords"
            )
        if not padding_is_zero(stream, nbits):
            raise FormatError("corrupt huffman index stream: non-zero padding bits")
        table = _DecodeTable(lengths)
        starts = codeword_starts(stream, nbits, table)
        if starts.size != n:
            raise FormatError(
                f"corrupt huffman index stream: {starts.size} codewords, expected {n}"
            )
        out = table.symbols_at(stream, starts)
        if (out < 0).any():
            raise FormatError("corrupt huffman index stream: a bit pattern that is no codeword")
        return out.reshape(groups, per_group)


def _pack_codes(flat: np.ndarray, codes: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Concatenate the codewords of ``flat`` MSB first; returns (bytes, number of bits)."""
    longest = int(lengths.max())
    nbytes, dtype = (2, ">u2") if longest <= 16 else (4, ">u4")
    aligned = (codes.astype(np.uint64) << (longest - lengths.astype(np.uint64))).astype(dtype)
    columns = np.arange(longest, dtype=np.uint8)
    parts = []
    for start in range(0, flat.size, _ENCODE_BLOCK):
        block = flat[start : start + _ENCODE_BLOCK]
        matrix = np.unpackbits(aligned[block].view(np.uint8).reshape(-1, nbytes), axis=1)
        matrix = matrix[:, 8 * nbytes - longest :]
        parts.append(matrix[columns[None, :] < lengths[block][:, None]])
    bits = np.concatenate(parts)
    return np.packbits(bits).tobytes(), int(bits.size)


class _DecodeTable:
    """Lookup tables indexed by the next ``longest`` bits of the stream.

    Attributes:
        longest: the longest code length L.
        symbol: int32 ``(2**L,)``: the symbol whose codeword prefixes the window, or -1.
        length: int64 ``(2**L,)``: that codeword's length (1 for a non-codeword, so a corrupt
            stream still advances).
        step: gcd of the used lengths (codeword boundaries fall on its multiples' classes).
    """

    def __init__(self, lengths: np.ndarray) -> None:
        _, order = canonical_codes(lengths)
        self.longest = int(lengths.max())
        spans = np.left_shift(1, self.longest - lengths[order].astype(np.int64))
        size = 1 << self.longest
        filled = int(spans.sum())
        self.symbol = np.full(size, -1, dtype=np.int32)
        self.length = np.ones(size, dtype=np.int64)
        self.symbol[:filled] = np.repeat(order.astype(np.int32), spans)
        self.length[:filled] = np.repeat(lengths[order].astype(np.int64), spans)
        self.step = math.gcd(*(int(x) for x in np.unique(lengths[order])))

    def symbols_at(self, stream: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The symbol decoded at each bit position (int32, -1 for a non-codeword)."""
        words = _words(stream)
        out = np.empty(positions.size, dtype=np.int32)
        for start in range(0, positions.size, _DECODE_BLOCK):  # bounded scratch memory
            part = positions[start : start + _DECODE_BLOCK]
            out[start : start + part.size] = self.symbol[_windows(words, part, self.longest)]
        return out


def _words(stream: np.ndarray) -> np.ndarray:
    """uint32 ``(bytes,)``: the big-endian 32-bit word starting at each byte of the stream."""
    padded = np.concatenate([stream, np.zeros(3, dtype=np.uint8)])
    return (
        np.lib.stride_tricks.sliding_window_view(padded, 4)
        .copy()
        .view(">u4")[:, 0]
        .astype(np.uint32)
    )


def _windows(words: np.ndarray, positions: np.ndarray, longest: int) -> np.ndarray:
    """The ``longest`` bits starting at each bit position (int64)."""
    word = words[positions >> 3].astype(np.uint64)
    shifted = (word << (positions & 7).astype(np.uint64)) & np.uint64(0xFFFFFFFF)
    return (shifted >> np.uint64(32 - longest)).astype(np.int64)


def codeword_starts(stream: np.ndarray, nbits: int, table: _DecodeTable) -> np.ndarray:
    """Bit positions where the codewords of ``stream`` start (int64, ascending).

    The result is what sequential decoding from bit 0 visits; the caller checks the count and
    the symbols. Raises FormatError when the last codeword runs past ``nbits``.
    """
    if nbits == 0:
        return np.zeros(0, dtype=np.int64)
    words = _words(stream)
    block = table.step * -(-BLOCK_BITS // table.step)
    lanes = max(1, nbits // block)
    begin = np.arange(lanes, dtype=np.int64) * block
    end = begin + block
    end[-1] = nbits
    mark = np.zeros(nbits, dtype=bool)
    exits = np.empty(lanes, dtype=np.int64)

    def run(which: np.ndarray, start: np.ndarray) -> None:
        cur = start.copy()
        stop = end[which]
        active = np.arange(which.size)
        while active.size:
            pos = cur[active]
            mark[pos] = True
            pos = pos + table.length[_windows(words, pos, table.longest)]
            cur[active] = pos
            active = active[pos < stop[active]]
        exits[which] = cur

    run(np.arange(lanes), begin)
    for _ in range(MAX_ROUNDS):
        failing = np.flatnonzero(~mark[exits[:-1]]) + 1  # lane b must contain lane b-1's exit
        if failing.size == 0:
            break
        for lane in failing:
            mark[begin[lane] : end[lane]] = False
        run(failing, exits[failing - 1])
    else:
        failing = np.flatnonzero(~mark[exits[:-1]]) + 1
        if failing.size:
            first = int(failing[0])
            mark[begin[first] :] = False
            exits[-1] = _decode_sequential(stream, nbits, table, int(exits[first - 1]), mark)
            exits[first:-1] = begin[first + 1 :]  # lanes past `first`: nothing left to clear
    if exits[-1] != nbits:
        raise FormatError("corrupt huffman index stream: the last codeword runs past the end")
    # marks a lane made before its true entry point (its predecessor's exit) are spurious
    entry = exits[:-1]
    for offset in range(table.longest):
        pos = begin[1:] + offset
        pos = pos[pos < entry]
        mark[pos] = False
    return np.flatnonzero(mark)


def _decode_sequential(
    stream: np.ndarray, nbits: int, table: _DecodeTable, start: int, mark: np.ndarray
) -> int:
    """Walk codewords one at a time from bit ``start``, marking each start; returns the end."""
    data = stream.tobytes() + b"\0\0\0\0"
    longest, length = table.longest, table.length.tolist()
    pos, mask = start, (1 << longest) - 1
    while pos < nbits:
        mark[pos] = True
        byte = pos >> 3
        word = int.from_bytes(data[byte : byte + 4], "big")
        pos += length[(word >> (32 - longest - (pos & 7))) & mask]
    return pos
