"""Tensor codecs by name: how one state-dict tensor becomes chunks of the container, and back.

* ``raw``: the tensor's bytes, little-endian, C order; one chunk ``data``. Used for everything
  that is not clustered (biases, BatchNorm parameters and buffers, counters).
* ``shared``: a clustered weight (:class:`SharedWeights`); chunks ``codebook`` (``G x k_eff``
  values in ``codebook_dtype``) and ``indices`` (an index coder's bytes); params ``k``,
  ``k_eff``, ``groups``, ``granularity``, ``codebook_dtype``, ``coder``.

Every codec a manifest may name is registered in :data:`TENSOR_CODECS` (name -> the module whose
``MODEL_DECODERS`` holds its decoder, imported when a file uses it): ``raw`` and ``shared`` here,
``sparse_shared`` in :mod:`weightshare.codecs.sparse`,
the residual ones in :mod:`weightshare.codecs.residual.codecs`, ``pu_delta`` (partial-update
files) in :mod:`weightshare.codecs.update`. The container does not change.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from weightshare.codecs.codebook import CODEBOOK_DTYPES, decode_codebook, encode_codebook
from weightshare.codecs.coders import CODER_NAMES, decode_indices, encode_indices
from weightshare.codecs.container import DTYPES, FormatError, TensorEntry, TensorPayload
from weightshare.errors import UserError
from weightshare.types import GRANULARITIES, K_MAX, SharedWeights


class TensorCodec(Protocol):
    """Decodes the tensors one codec wrote (encoders are plain functions with their own args)."""

    name: str
    chunk_kinds: tuple[str, ...]

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview]) -> np.ndarray:
        """The tensor, dtype ``DTYPES[entry.dtype]``, shape ``entry.shape``.

        Raises:
            FormatError: params or chunks inconsistent with the entry.
        """
        ...


def dtype_name(dtype: np.dtype) -> str | None:
    """The container's name for a numpy dtype (byte order ignored), or None if unsupported."""
    for name, candidate in DTYPES.items():
        if np.dtype(dtype).newbyteorder("=") == candidate.newbyteorder("="):
            return name
    return None


# --- raw -----------------------------------------------------------------------------------


def encode_raw(name: str, array: np.ndarray) -> TensorPayload:
    """A ``raw`` tensor payload; ``array``'s dtype must have a name in ``DTYPES`` (trusted)."""
    kind = dtype_name(array.dtype)
    data = np.ascontiguousarray(array, dtype=DTYPES[kind]).tobytes()
    return TensorPayload(name, tuple(array.shape), kind, "raw", {}, (("data", data),))


class RawCodec:
    """Uncompressed little-endian tensors."""

    name = "raw"
    chunk_kinds = ("data",)

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview]) -> np.ndarray:
        dtype = DTYPES[entry.dtype]
        (data,) = chunks
        if len(data) != entry.size * dtype.itemsize:
            raise FormatError(
                f"corrupt model file: tensor {entry.name!r} has {len(data)} bytes, its shape "
                f"{list(entry.shape)} and dtype {entry.dtype} need {entry.size * dtype.itemsize}"
            )
        array = np.frombuffer(data, dtype=dtype).reshape(entry.shape)
        if dtype == np.bool_ and array.view(np.uint8).max(initial=0) > 1:
            raise FormatError(f"corrupt model file: tensor {entry.name!r} has non-0/1 booleans")
        return array.astype(dtype.newbyteorder("="), copy=True)


# --- shared --------------------------------------------------------------------------------


def shared_chunks(
    shared: SharedWeights, *, coder: str, codebook_dtype: str
) -> tuple[dict[str, Any], bytes, bytes]:
    """The ``shared`` codec's params, codebook bytes and index bytes for one tensor.

    Raises:
        UserError: unknown coder or dtype, an fp16 codebook out of range, or a codebook wider
            than the weights per group (never the case for a clustering result).
    """
    per_group = shared.indices.size // shared.groups
    if shared.k_eff > per_group:
        raise UserError(
            f"a codebook of {shared.k_eff} values for {per_group} weights per group cannot be "
            "stored (k_eff must not exceed the weights per group)"
        )
    codebook = encode_codebook(shared.codebook, codebook_dtype)
    indices = encode_indices(shared.indices.reshape(shared.groups, -1), shared.k_eff, coder)
    params = {
        "k": shared.k,
        "k_eff": shared.k_eff,
        "groups": shared.groups,
        "granularity": shared.granularity,
        "codebook_dtype": codebook_dtype,
        "coder": coder,
    }
    return params, codebook, indices


def encode_shared(
    name: str, shared: SharedWeights, *, coder: str, codebook_dtype: str
) -> TensorPayload:
    """A ``shared`` tensor payload (decodes to ``shared.dequantize()`` with fp32 codebooks)."""
    params, codebook, indices = shared_chunks(shared, coder=coder, codebook_dtype=codebook_dtype)
    return TensorPayload(
        name,
        tuple(shared.indices.shape),
        "float32",
        "shared",
        params,
        (("codebook", codebook), ("indices", indices)),
    )


def _param_int(entry: TensorEntry, key: str, low: int, high: int) -> int:
    value = entry.params.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FormatError(
            f"corrupt model file: tensor {entry.name!r}: param {key!r} must be an int in "
            f"[{low}, {high}]; got {value!r}"
        )
    return value


def _param_choice(entry: TensorEntry, key: str, allowed: tuple[str, ...]) -> str:
    value = entry.params.get(key)
    if value not in allowed:
        raise FormatError(
            f"corrupt model file: tensor {entry.name!r}: param {key!r} must be one of "
            f"{allowed}; got {value!r}"
        )
    return value


class SharedCodec:
    """Weight-shared tensors: codebook + coded indices, decoded to float32."""

    name = "shared"
    chunk_kinds = ("codebook", "indices")

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview]) -> np.ndarray:
        where = f"corrupt model file: tensor {entry.name!r}"
        if entry.dtype != "float32" or len(entry.shape) == 0 or entry.size == 0:
            raise FormatError(f"{where}: a shared tensor must be float32 with >= 1 element")
        k = _param_int(entry, "k", 1, K_MAX)
        k_eff = _param_int(entry, "k_eff", 1, k)
        granularity = _param_choice(entry, "granularity", GRANULARITIES)
        coder = _param_choice(entry, "coder", CODER_NAMES)
        codebook_dtype = _param_choice(entry, "codebook_dtype", tuple(CODEBOOK_DTYPES))
        groups = _param_int(entry, "groups", 1, entry.size)
        expected = 1 if granularity == "layer" else entry.shape[0]
        if groups != expected:
            raise FormatError(
                f"{where}: {groups} groups, {granularity} granularity needs {expected}"
            )
        if k_eff > entry.size // groups:  # bounds every table by the declared scalars
            raise FormatError(
                f"{where}: k_eff {k_eff} exceeds the {entry.size // groups} weights per group"
            )
        codebook_bytes, index_bytes = chunks
        codebook = decode_codebook(codebook_bytes, groups, k_eff, codebook_dtype)
        try:
            indices = decode_indices(index_bytes, groups, entry.size // groups, k_eff, coder)
        except FormatError as exc:
            raise FormatError(f"tensor {entry.name!r}: {exc}") from None
        if groups == 1:
            values = codebook[0][indices[0]]
        else:
            values = codebook[np.arange(groups)[:, None], indices]
        return values.reshape(entry.shape)


MODEL_DECODERS: dict[str, TensorCodec] = {c.name: c for c in (RawCodec(), SharedCodec())}
"""The decoders of this module's codecs, by name."""

TENSOR_CODECS: dict[str, str] = {
    "raw": "weightshare.codecs.tensors",
    "shared": "weightshare.codecs.tensors",
    "sparse_shared": "weightshare.codecs.sparse",
    "fp16": "weightshare.codecs.residual.codecs",
    "res_fp16": "weightshare.codecs.residual.codecs",
    "res_grid": "weightshare.codecs.residual.codecs",
    "res_int": "weightshare.codecs.residual.codecs",
    "pu_delta": "weightshare.codecs.update",
}
"""The registration of every tensor codec: name -> module whose ``MODEL_DECODERS`` decodes it."""


def get_tensor_codec(name: str) -> TensorCodec | None:
    """The decoder of codec ``name`` as :func:`decode_tensor` uses it; None if unregistered."""
    module = TENSOR_CODECS.get(name)
    return None if module is None else importlib.import_module(module).MODEL_DECODERS[name]


def decode_tensor(entry: TensorEntry, chunks: Sequence[memoryview]) -> np.ndarray:
    """Decode one manifest entry with its registered codec.

    Raises:
        FormatError: unknown codec, unexpected chunk kinds, or bad params/chunks.
    """
    codec = get_tensor_codec(entry.codec)
    if codec is None:
        raise FormatError(
            f"tensor {entry.name!r} uses the unknown codec {entry.codec!r} (known: "
            f"{', '.join(TENSOR_CODECS)}); was the file written by a newer weightshare?"
        )
    check_chunk_kinds(entry, codec.chunk_kinds)
    return codec.decode(entry, chunks)


def check_chunk_kinds(entry: TensorEntry, expected: tuple[str, ...]) -> None:
    """FormatError unless ``entry``'s chunks are of the kinds ``expected``, in that order."""
    kinds = tuple(chunk.kind for chunk in entry.chunks)
    if kinds != expected:
        raise FormatError(
            f"corrupt model file: tensor {entry.name!r} ({entry.codec}) has chunks {kinds}, "
            f"expected {expected}"
        )
