"""Size model of a weight-shared network, in bits.

Three sizes of the clustered layers:

* **fixed-length**, the seed's formula (Dupuis et al.): each weight stores a
  ``ceil(log2 k)``-bit index and each codebook stores ``k`` values of ``codebook_bits`` bits;
* **entropy estimate**: each codebook group's index stream costs ``n * H(p)`` bits, with ``H``
  the empirical order-0 entropy of its index frequencies ``p``, plus the codebook entries in
  use. An ideal order-0 entropy coder approaches it; it counts no container overhead;
* **coded**: :func:`coded_bits`, the bytes the model file's encoder really writes for the
  layer (codebook + coded indices with their model table; for a pruned layer also the coded
  positions of its survivors, ``sparse_shared``).

A layer pruned to ``nnz`` survivors before sharing (``--prune-grid``) has the fixed-length size
:func:`pruned_fixed_bits`: the survivors' indices and the codebook as above, plus a bitmap of
one bit per weight for the positions.

The uncompressed baseline is always fp32: 32 bits per weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from weightshare.codecs.counts import group_counts, order0_bits
from weightshare.codecs.sparse import SparseShared, sparse_chunks
from weightshare.errors import UserError
from weightshare.types import K_MAX, SharedWeights
from weightshare.validation import check_int

BASELINE_BITS = 32


@dataclass(frozen=True)
class LayerSize:
    """What the fixed-length size of one clustered layer depends on.

    Attributes:
        name: the layer's canonical name.
        n_weights: number of weights in the clustered tensor, >= 1.
        k: shared values per codebook, in ``[1, 65536]``.
        groups: number of codebooks (1 per layer, or the output channels), >= 1.
        codebook_bits: bits per stored codebook value (32 for float32), >= 1.
    """

    name: str
    n_weights: int
    k: int
    groups: int = 1
    codebook_bits: int = 32

    def __post_init__(self) -> None:
        check_int("n_weights", self.n_weights, 1)
        check_int("k", self.k, 1, K_MAX)
        check_int("groups", self.groups, 1)
        check_int("codebook_bits", self.codebook_bits, 1)


def index_bits(k: int) -> int:
    """Bits of one fixed-length index into ``k`` values: ``ceil(log2 k)``, 0 for ``k == 1``."""
    return (check_int("k", k, 1, K_MAX) - 1).bit_length()


def fixed_bits(layer: LayerSize) -> int:
    """Fixed-length size of one layer in bits (the seed's formula per layer).

    ``index_bits(k) * n_weights + codebook_bits * k * groups``.
    """
    return index_bits(layer.k) * layer.n_weights + layer.codebook_bits * layer.k * layer.groups


def pruned_fixed_bits(layer: LayerSize, nnz: int) -> int:
    """Fixed-length size in bits of ``layer`` magnitude-pruned to ``nnz`` survivors, then
    shared: ``fixed_bits`` of the ``nnz`` survivors plus a ``layer.n_weights``-bit bitmap.

    ``index_bits(k) * nnz + codebook_bits * k * groups + n_weights``.
    """
    nnz = check_int("nnz", nnz, 1, layer.n_weights)
    survivors = LayerSize(layer.name, nnz, layer.k, layer.groups, layer.codebook_bits)
    return fixed_bits(survivors) + layer.n_weights


def layer_fixed_bits(name: str, shared: SharedWeights | SparseShared) -> int:
    """Fixed-length size in bits of one clustered layer: :func:`fixed_bits`, or
    :func:`pruned_fixed_bits` for a pruned one (a
    :class:`~weightshare.codecs.sparse.SparseShared`)."""
    if isinstance(shared, SparseShared):
        layer = LayerSize(name, int(shared.mask.size), shared.shared.k)
        return pruned_fixed_bits(layer, int(shared.shared.indices.size))
    return fixed_bits(LayerSize(name, int(shared.indices.size), shared.k, shared.groups))


def compression_ratio_fixed(layers: Sequence[LayerSize]) -> float:
    """The seed's compression ratio over the clustered layers only.

    ``sum(32 * W_l) / sum(fixed_bits(l))``: the weight-count-weighted harmonic mean of the
    per-layer ratios (biases, BatchNorm and other tensors are not counted).
    """
    _check_layers(layers)
    original = sum(BASELINE_BITS * layer.n_weights for layer in layers)
    return original / sum(fixed_bits(layer) for layer in layers)


def compression_ratio_model(layers: Sequence[LayerSize], n_unclustered: int) -> float:
    """Whole-model compression ratio with fixed-length indices.

    Args:
        layers: the clustered layers.
        n_unclustered: number of the model's other float parameters (biases, BatchNorm, ...),
            stored at 32 bits in both the original and the compressed model.

    Returns:
        ``32 * (sum W_l + n_unclustered) / (sum fixed_bits(l) + 32 * n_unclustered)``.
    """
    _check_layers(layers)
    n_unclustered = check_int("n_unclustered", n_unclustered, 0)
    original = BASELINE_BITS * (sum(layer.n_weights for layer in layers) + n_unclustered)
    compressed = sum(fixed_bits(layer) for layer in layers) + BASELINE_BITS * n_unclustered
    return original / compressed


def entropy_bits(shared: SharedWeights, *, codebook_bits: int = 32) -> float:
    """Estimated size of one shared layer in bits, with entropy-coded indices.

    Each codebook group ``g`` with ``n_g`` indices and empirical index frequencies ``p_g``
    costs ``n_g * H(p_g)`` bits (order-0 entropy, ``H`` in bits per index), plus
    ``codebook_bits`` for each codebook entry that at least one weight uses (the padding of
    ``"channel"`` codebooks is not counted). An estimate, not a coded size.
    """
    codebook_bits = check_int("codebook_bits", codebook_bits, 1)
    counts = group_counts(shared.indices.reshape(shared.groups, -1), shared.k_eff)
    return order0_bits(counts) + codebook_bits * int(np.count_nonzero(counts))


def compression_ratio_entropy(shared: Sequence[SharedWeights], *, codebook_bits: int = 32) -> float:
    """Compression ratio of the clustered layers with entropy-coded indices (an estimate).

    ``sum(32 * W_l) / sum(entropy_bits(l))``; like :func:`compression_ratio_fixed`, other
    tensors are not counted.
    """
    if len(shared) == 0:
        raise UserError("shared must hold at least 1 layer; got 0")
    original = sum(BASELINE_BITS * layer.indices.size for layer in shared)
    return original / sum(entropy_bits(layer, codebook_bits=codebook_bits) for layer in shared)


def _check_layers(layers: Sequence[LayerSize]) -> None:
    if len(layers) == 0:
        raise UserError("layers must hold at least 1 layer; got 0")


def coded_bits(
    shared: SharedWeights | SparseShared, *, coder: str = "ans", codebook_dtype: str = "fp32"
) -> int:
    """Real coded size of one shared layer in bits: what the model file spends on it.

    Runs the encoder of :mod:`weightshare.codecs` and counts the bytes of the layer's chunks:
    the codebook (``G x k_eff`` values of ``codebook_dtype``) and the coded indices, whose
    model table (counts or code lengths) is inside them; for a pruned layer
    (:class:`~weightshare.codecs.sparse.SparseShared`) also its coded positions (gaps or
    bitmap, whichever is smaller) and the indices of the survivors only. Not counted: the
    layer's entry in the (deflated) manifest, the file header and the unclustered tensors.
    Deterministic;
    costs one encode (tens of ns per weight for ``ans``), so callers cache it per (layer, k).

    Args:
        shared: the layer's clustering result.
        coder: index coder, one of ``weightshare.codecs.CODER_NAMES`` (``ans``, ``huffman``,
            ``fixed``).
        codebook_dtype: ``"fp32"`` or ``"fp16"``.

    Returns:
        ``8 * (codebook bytes + index bytes)``.

    Raises:
        UserError: unknown coder or codebook dtype, or an fp16 codebook out of range.
    """
    from weightshare.codecs.tensors import shared_chunks

    if isinstance(shared, SparseShared):
        _, *chunks = sparse_chunks(shared, coder=coder, codebook_dtype=codebook_dtype)
        return 8 * sum(len(chunk) for chunk in chunks)
    _, codebook, indices = shared_chunks(shared, coder=coder, codebook_dtype=codebook_dtype)
    return 8 * (len(codebook) + len(indices))
