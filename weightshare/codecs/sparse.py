"""The ``sparse_shared`` tensor codec: a pruned, weight-shared tensor (Deep Compression, sec. 3).

Only the surviving weights are stored: their positions, and the shared values' indices of the
survivors. Positions are coded per layer in whichever of two ways is smaller:

* ``gaps``: the distance from one survivor to the next as ``b``-bit symbols (``b`` chosen per
  layer, 1..16), coded by the index coder. With ``M = 2**b - 1``, a symbol ``s < M`` advances
  the position by ``s + 1`` and places a weight; the filler symbol ``M`` advances by ``M``
  without a weight (the paper's filler zero, which here costs no weight index). The cursor
  starts at ``-1`` (flat C order).
* ``bitmap``: one bit per element, LSB first, ``1`` = kept; zero padding to a whole byte.

Chunks: ``codebook`` (``k_eff`` values, as ``shared``), ``positions``, ``indices`` (the index
coder's bytes for the ``nnz`` survivors, in position order). Decodes to float32 with zeros at
the removed positions. Format details: docs/format.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from weightshare.codecs.codebook import CODEBOOK_DTYPES, decode_codebook, encode_codebook
from weightshare.codecs.coders import CODER_NAMES, decode_indices, encode_indices
from weightshare.codecs.container import FormatError, TensorEntry, TensorPayload
from weightshare.codecs.tensors import _param_choice, _param_int
from weightshare.errors import UserError
from weightshare.types import K_MAX, SharedWeights

MAX_GAP_BITS = 16
POSITION_CODINGS = ("gaps", "bitmap")


@dataclass(frozen=True, eq=False)
class SparseShared:
    """A pruned tensor whose survivors share values.

    Attributes:
        mask: bool, the tensor's shape; ``True`` = kept (at least one).
        shared: layer-granularity :class:`SharedWeights` of the kept weights in flat C order
            (``indices.shape == (mask.sum(),)``).
    """

    mask: np.ndarray
    shared: SharedWeights

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the dense tensor."""
        return tuple(self.mask.shape)

    def dequantize(self) -> np.ndarray:
        """The dense float32 tensor: shared values at the kept positions, 0 elsewhere."""
        out = np.zeros(self.mask.size, dtype=np.float32)
        out[np.flatnonzero(self.mask)] = self.shared.dequantize()
        return out.reshape(self.mask.shape)


def gap_symbols(positions: np.ndarray, bits: int) -> np.ndarray:
    """Gap symbols of strictly increasing flat ``positions`` (int64, ``(nnz,)``) in ``bits``
    bits: uint32 ``(nnz + fillers,)``."""
    top = (1 << bits) - 1
    gaps = np.diff(positions, prepend=-1).astype(np.int64)
    fillers = (gaps - 1) // top
    last = (gaps - fillers * top - 1).astype(np.uint32)
    out = np.full(len(gaps) + int(fillers.sum()), top, dtype=np.uint32)
    out[np.cumsum(fillers + 1) - 1] = last
    return out


def symbol_positions(symbols: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`gap_symbols`: the flat positions (int64) of the weights."""
    top = (1 << bits) - 1
    steps = np.where(symbols == top, top, symbols.astype(np.int64) + 1)
    return (np.cumsum(steps) - 1)[symbols != top]


def _bitmap(mask: np.ndarray) -> bytes:
    return np.packbits(mask.reshape(-1), bitorder="little").tobytes()


def sparse_chunks(sparse: SparseShared, *, coder: str, codebook_dtype: str):
    """The ``sparse_shared`` params and chunks (codebook, positions, indices) of one tensor;
    the position coding (and gap width) with the fewest bytes wins, ties to the bitmap.

    Raises:
        UserError: an empty mask, or ``shared`` not matching the mask.
    """
    mask = np.asarray(sparse.mask, dtype=bool)
    shared = sparse.shared
    nnz = int(mask.sum())
    if nnz < 1:
        raise UserError("a sparse tensor needs at least one kept weight")
    if shared.groups != 1 or shared.indices.shape != (nnz,):
        raise UserError(
            f"sparse shared values must be one codebook over the {nnz} kept weights; got "
            f"{shared.groups} groups, indices {shared.indices.shape}"
        )
    params = {"k": shared.k, "k_eff": shared.k_eff, "nnz": nnz}
    codebook = encode_codebook(shared.codebook, codebook_dtype)
    indices = encode_indices(shared.indices.reshape(1, -1), shared.k_eff, coder)
    best = ({"positions": "bitmap"}, _bitmap(mask))
    positions = np.flatnonzero(mask)
    for bits in range(1, MAX_GAP_BITS + 1):
        symbols = gap_symbols(positions, bits)
        data = encode_indices(symbols.reshape(1, -1), 1 << bits, coder)
        if len(data) < len(best[1]):
            best = ({"positions": "gaps", "gap_bits": bits, "symbols": len(symbols)}, data)
    params |= best[0] | {"codebook_dtype": codebook_dtype, "coder": coder}
    return params, codebook, best[1], indices


def encode_sparse_shared(
    name: str, sparse: SparseShared, *, coder: str, codebook_dtype: str
) -> TensorPayload:
    """A ``sparse_shared`` payload; decodes to ``sparse.dequantize()`` (fp32 codebooks)."""
    params, codebook, positions, indices = sparse_chunks(
        sparse, coder=coder, codebook_dtype=codebook_dtype
    )
    return TensorPayload(
        name,
        sparse.shape,
        "float32",
        "sparse_shared",
        params,
        (("codebook", codebook), ("positions", positions), ("indices", indices)),
    )


class SparseSharedCodec:
    """Pruned + weight-shared tensors: codebook, coded positions, coded survivor indices."""

    name = "sparse_shared"
    chunk_kinds = ("codebook", "positions", "indices")

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview]) -> np.ndarray:
        where = f"corrupt model file: tensor {entry.name!r}"
        if entry.dtype != "float32" or len(entry.shape) == 0 or entry.size == 0:
            raise FormatError(f"{where}: a sparse_shared tensor must be float32, >= 1 element")
        nnz = _param_int(entry, "nnz", 1, entry.size)
        k = _param_int(entry, "k", 1, K_MAX)
        k_eff = _param_int(entry, "k_eff", 1, min(k, nnz))
        coder = _param_choice(entry, "coder", CODER_NAMES)
        codebook_dtype = _param_choice(entry, "codebook_dtype", tuple(CODEBOOK_DTYPES))
        coding = _param_choice(entry, "positions", POSITION_CODINGS)
        codebook_bytes, position_bytes, index_bytes = chunks
        codebook = decode_codebook(codebook_bytes, 1, k_eff, codebook_dtype)[0]
        if coding == "bitmap":
            if len(position_bytes) != (entry.size + 7) // 8:
                raise FormatError(
                    f"{where}: bitmap of {len(position_bytes)} bytes, {entry.size} elements "
                    f"need {(entry.size + 7) // 8}"
                )
            bits = np.unpackbits(np.frombuffer(position_bytes, np.uint8), bitorder="little")
            if bits[entry.size :].any():
                raise FormatError(f"{where}: nonzero bitmap padding")
            positions = np.flatnonzero(bits[: entry.size])
        else:
            gap_bits = _param_int(entry, "gap_bits", 1, MAX_GAP_BITS)
            n_symbols = _param_int(entry, "symbols", nnz, entry.size)
            try:
                symbols = decode_indices(position_bytes, 1, n_symbols, 1 << gap_bits, coder)[0]
            except FormatError as exc:
                raise FormatError(f"tensor {entry.name!r} positions: {exc}") from None
            top = (1 << gap_bits) - 1
            if symbols[-1] == top:
                raise FormatError(f"{where}: the position stream ends with a filler")
            positions = symbol_positions(symbols, gap_bits)
            if len(positions) and positions[-1] >= entry.size:
                raise FormatError(
                    f"{where}: gaps run to position {int(positions[-1])}, past the "
                    f"{entry.size} elements"
                )
        if len(positions) != nnz:
            raise FormatError(f"{where}: {len(positions)} positions, nnz says {nnz}")
        try:
            indices = decode_indices(index_bytes, 1, nnz, k_eff, coder)[0]
        except FormatError as exc:
            raise FormatError(f"tensor {entry.name!r}: {exc}") from None
        out = np.zeros(entry.size, dtype=np.float32)
        out[positions] = codebook[indices]
        return out.reshape(entry.shape)


MODEL_DECODERS = {SparseSharedCodec.name: SparseSharedCodec()}
"""The decoder of this module's codec (registered in ``tensors.TENSOR_CODECS``)."""
