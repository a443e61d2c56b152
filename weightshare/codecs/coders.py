"""Index coders by name: how a layer's cluster indices become bytes, and back.

An index coder turns the indices of one clustered tensor, arranged as ``(G, n)`` (``G``
codebook groups of ``n`` indices each, C order), into a self-describing byte string: any model
table it needs (counts, code lengths) is inside those bytes and therefore counted in the size.
The decoder is told ``G``, ``n`` and the alphabet size ``k`` by the manifest.

Registered coders (``--coder``; the table :data:`CODERS`):

* ``ans``: rANS (constriction's ``AnsCoder``) under an order-0 categorical model built from the
  exact index counts of the layer (or of each group, whichever is smaller);
* ``huffman``: canonical Huffman, one code per layer (Deep Compression's stage);
* ``fixed``: ``ceil(log2 k)`` bits per index, no table (the seed's size accounting).

:func:`encode_indices` / :func:`decode_indices` are the checked entry points: they handle the
trivial alphabet (``k == 1``: zero bytes) and normalise dtypes, then call the coder.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from weightshare.codecs.container import FormatError
from weightshare.errors import UserError
from weightshare.types import K_MAX
from weightshare.validation import check_choice, check_int


class IndexCoder(Protocol):
    """What every index coder provides (tests/codecs/conformance.py checks it)."""

    name: str

    def encode(self, symbols: np.ndarray, k: int) -> bytes:
        """Code ``symbols``: integer array ``(G, n)``, values in ``[0, k)``, ``k >= 2``, n >= 1."""
        ...

    def decode(self, data: memoryview, groups: int, per_group: int, k: int) -> np.ndarray:
        """The ``(groups, per_group)`` integer array of values in ``[0, k)`` coded in ``data``.

        Raises:
            FormatError: ``data`` is not a valid stream for that shape and alphabet.
        """
        ...


CODERS: dict[str, str] = {
    "ans": "weightshare.codecs.ans:AnsIndexCoder",
    "huffman": "weightshare.codecs.huffman:HuffmanIndexCoder",
    "fixed": "weightshare.codecs.fixed:FixedIndexCoder",
}
"""The registration of every index coder: name -> ``"module:class"``, imported when first used."""

CODER_NAMES = tuple(CODERS)
DEFAULT_CODER = "ans"
_CODERS: dict[str, IndexCoder] = {}


def get_coder(name: str) -> IndexCoder:
    """The coder registered as ``name``; a UserError listing ``CODER_NAMES`` otherwise."""
    check_choice("coder", name, CODER_NAMES)
    if name not in _CODERS:
        module, _, attribute = CODERS[name].partition(":")
        _CODERS[name] = getattr(importlib.import_module(module), attribute)()
    return _CODERS[name]


def index_dtype(k: int) -> np.dtype:
    """Decoded index dtype: uint8 for ``k <= 256``, else uint16."""
    return np.dtype(np.uint8) if k <= 256 else np.dtype(np.uint16)


def encode_indices(indices: np.ndarray, k: int, coder: str) -> bytes:
    """Code one tensor's indices.

    Args:
        indices: unsigned integer array ``(G, n)``, ``G >= 1``, ``n >= 1``, values in ``[0, k)``.
        k: alphabet size (the codebook width ``k_eff``), in ``[1, 65536]``.
        coder: a name in ``CODER_NAMES``.

    Returns:
        The coded bytes; ``b""`` when ``k == 1`` (every index is 0).

    Raises:
        UserError: bad shape, dtype, ``k`` or coder, or an index outside ``[0, k)``.
    """
    implementation = get_coder(coder)
    k = check_int("k", k, 1, K_MAX)
    array = np.asarray(indices)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise UserError(f"indices must be a 2-D array (groups, n) with n >= 1; got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise UserError(f"indices must be an integer array; got dtype {array.dtype}")
    if int(array.min()) < 0 or int(array.max()) >= k:
        raise UserError(
            f"indices must lie in [0, {k}); got [{int(array.min())}, {int(array.max())}]"
        )
    if k == 1:
        return b""
    return implementation.encode(array, k)


def decode_indices(
    data: bytes | memoryview, groups: int, per_group: int, k: int, coder: str
) -> np.ndarray:
    """Inverse of :func:`encode_indices`.

    Returns:
        ``index_dtype(k)`` array ``(groups, per_group)``.

    Raises:
        FormatError: the bytes do not decode to that shape and alphabet.
    """
    implementation = get_coder(coder)
    view = memoryview(data).cast("B")
    if k == 1:
        if len(view):
            raise FormatError(f"corrupt {coder} index stream: {len(view)} bytes for k = 1")
        return np.zeros((groups, per_group), dtype=np.uint8)
    symbols = implementation.decode(view, groups, per_group, k)
    if symbols.shape != (groups, per_group):  # a coder bug, not a file problem
        raise AssertionError(f"{coder} decoded {symbols.shape}, not {(groups, per_group)}")
    return symbols.astype(index_dtype(k), copy=False)
