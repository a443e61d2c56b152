"""Whole models: a state dict plus the clustered layers -> one file, and back.

``encode_model`` writes every tensor of the state dict: the clustered ones with the ``shared``
codec (codebook + coded indices), all others (biases, BatchNorm parameters and buffers,
counters) with ``raw``. ``decode_model`` returns the complete state dict as numpy arrays, in
the order it was written. With fp32 codebooks, each decoded clustered weight equals
``SharedWeights.dequantize()`` bit for bit; with fp16 codebooks it equals
``round_codebook(shared, "fp16", weights=w).dequantize()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightshare.codecs.codebook import CODEBOOK_DTYPES, DEFAULT_CODEBOOK_DTYPE
from weightshare.codecs.coders import CODER_NAMES, DEFAULT_CODER
from weightshare.codecs.container import (
    DEFAULT_MAX_ELEMENTS,
    DTYPES,
    MAX_NAME_CHARS,
    Manifest,
    TensorEntry,
    TensorPayload,
    container_size,
    manifest_entry,
    read_container,
    write_container,
)
from weightshare.codecs.sparse import SparseShared, encode_sparse_shared
from weightshare.codecs.tensors import decode_tensor, dtype_name, encode_raw, encode_shared
from weightshare.errors import UserError
from weightshare.types import SharedWeights
from weightshare.validation import check_choice, check_int


@dataclass(frozen=True)
class DecodedModel:
    """A decoded model file.

    Attributes:
        manifest: the file's manifest (network, tensors with their codec params and chunk
            sizes, meta).
        state: tensor name -> numpy array (writable, native byte order), in file order; the
            clustered tensors are float32, the others keep their stored dtype.
    """

    manifest: Manifest
    state: dict[str, np.ndarray] = field(repr=False)

    @property
    def network(self) -> str:
        """The network name the encoder recorded."""
        return self.manifest.network


@dataclass(frozen=True)
class TensorSize:
    """Size of one stored tensor, for summaries.

    Attributes:
        name: state-dict key.
        codec: ``"shared"``, ``"sparse_shared"`` or ``"raw"`` (or a later codec's name).
        n: scalars in the tensor.
        original_bytes: its size in the state dict (float32 for clustered tensors).
        stored_bytes: payload bytes in the file (all chunks).
        index_bytes: bytes of the ``indices`` chunk (0 for other codecs).
        codebook_bytes: bytes of the ``codebook`` chunk (0 for other codecs).
        position_bytes: bytes of the ``positions`` chunk of a pruned tensor
            (``sparse_shared``; 0 for other codecs).
        k: requested shared values (None unless shared).
        k_eff: stored codebook width (None unless shared).
        coder: index coder (None unless shared).
    """

    name: str
    codec: str
    n: int
    original_bytes: int
    stored_bytes: int
    index_bytes: int = 0
    codebook_bytes: int = 0
    position_bytes: int = 0
    k: int | None = None
    k_eff: int | None = None
    coder: str | None = None

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per scalar (all chunks), 0 for an empty tensor."""
        return 8 * self.stored_bytes / self.n if self.n else 0.0


def encode_model(
    state: Mapping[str, np.ndarray],
    shared: Mapping[str, SharedWeights | SparseShared],
    *,
    network: str,
    coder: str = DEFAULT_CODER,
    codebook_dtype: str = DEFAULT_CODEBOOK_DTYPE,
    meta: Mapping[str, Any] | None = None,
) -> bytes:
    """Encode a model into the container format (docs/format.md).

    Args:
        state: every tensor of the model, name -> array (any shape, including 0-d), dtypes
            float16/32/64, int8/16/32/64, uint8 or bool. Written in this order.
        shared: the clustered tensors, state-dict name -> :class:`SharedWeights` whose
            ``indices.shape`` equals ``state[name].shape``, or a pruned one,
            :class:`~weightshare.codecs.sparse.SparseShared` (codec ``sparse_shared``);
            their original values are not stored.
        network: registry name of the network (recorded for the decoder, e.g. for ONNX export).
        coder: index coder, one of ``CODER_NAMES``.
        codebook_dtype: ``"fp32"`` (exact) or ``"fp16"``.
        meta: free-form JSON object recorded in the manifest (settings, provenance).

    Returns:
        The file's bytes.

    Raises:
        UserError: an invalid argument (names the tensor and what was expected).
    """
    if not isinstance(network, str) or not 0 < len(network) <= MAX_NAME_CHARS:
        raise UserError(f"network must be a non-empty string; got {network!r}")
    payloads = model_payloads(state, shared, coder=coder, codebook_dtype=codebook_dtype)
    return write_container(network, payloads, meta)


def model_payloads(
    state: Mapping[str, np.ndarray],
    shared: Mapping[str, SharedWeights],
    *,
    coder: str = DEFAULT_CODER,
    codebook_dtype: str = DEFAULT_CODEBOOK_DTYPE,
) -> list[TensorPayload]:
    """The container payloads of a model, in ``state`` order (see :func:`encode_model`).

    Raises:
        UserError: an invalid argument (names the tensor and what was expected).
    """
    check_choice("coder", coder, CODER_NAMES)
    check_choice("codebook_dtype", codebook_dtype, tuple(CODEBOOK_DTYPES))
    unknown = [name for name in shared if name not in state]
    if unknown:
        raise UserError(f"shared names tensor {unknown[0]!r}, which is not in the state dict")
    payloads = []
    for name, value in state.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
            raise UserError(
                f"tensor names must be strings of 1 to {MAX_NAME_CHARS} chars; got {name!r}"
            )
        array = np.asarray(value)
        if dtype_name(array.dtype) is None:
            raise UserError(
                f"tensor {name!r} has dtype {array.dtype}; supported: float16/32/64, "
                "int8/16/32/64, uint8, bool"
            )
        if name not in shared:
            payloads.append(encode_raw(name, array))
            continue
        sw = shared[name]
        if isinstance(sw, SparseShared) and sw.shape == array.shape:
            payloads.append(
                encode_sparse_shared(name, sw, coder=coder, codebook_dtype=codebook_dtype)
            )
            continue
        if not isinstance(sw, SharedWeights):
            raise UserError(f"shared[{name!r}] must be a SharedWeights; got {type(sw).__name__}")
        if sw.indices.shape != array.shape or not np.issubdtype(array.dtype, np.floating):
            raise UserError(
                f"shared[{name!r}] has shape {sw.indices.shape}, the state dict's tensor is "
                f"{array.dtype} {array.shape}; they must match (a floating tensor)"
            )
        payloads.append(encode_shared(name, sw, coder=coder, codebook_dtype=codebook_dtype))
    return payloads


def decode_model(
    data: bytes | bytearray | memoryview, *, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> DecodedModel:
    """Decode a model file.

    Args:
        data: the whole file.
        max_elements: refuse files declaring more scalars in total (default 2**28): bounds what
            a crafted file can make the decoder allocate (about 10 bytes per declared scalar
            at the peak).

    Returns:
        The :class:`DecodedModel`.

    Raises:
        FormatError: (a :class:`UserError`) truncated, corrupt, crafted or unsupported input;
            checksums are verified before anything is decoded.
    """
    max_elements = check_int("max_elements", max_elements, 0)
    manifest, chunks = read_container(data, max_elements=max_elements)
    state = {
        entry.name: decode_tensor(entry, views)
        for entry, views in zip(manifest.tensors, chunks, strict=True)
    }
    return DecodedModel(manifest, state)


def tensor_sizes(manifest: Manifest) -> list[TensorSize]:
    """One :class:`TensorSize` per tensor of ``manifest``, in file order."""
    return [_tensor_size(entry) for entry in manifest.tensors]


def _tensor_size(entry: TensorEntry) -> TensorSize:
    sizes = {chunk.kind: chunk.length for chunk in entry.chunks}
    original = entry.size * DTYPES[entry.dtype].itemsize
    if entry.codec not in ("shared", "sparse_shared"):
        return TensorSize(entry.name, entry.codec, entry.size, original, entry.coded_bytes)
    return TensorSize(
        entry.name,
        entry.codec,
        entry.size,
        original,
        entry.coded_bytes,
        index_bytes=sizes.get("indices", 0),
        codebook_bytes=sizes.get("codebook", 0),
        position_bytes=sizes.get("positions", 0),
        k=entry.params.get("k"),
        k_eff=entry.params.get("k_eff"),
        coder=entry.params.get("coder"),
    )


def original_bytes(state: Mapping[str, np.ndarray]) -> int:
    """Bytes of a state dict held as is (the fp32 baseline for float32 models)."""
    return sum(np.asarray(value).nbytes for value in state.values())


def weight_key(layer: str) -> str:
    """The state-dict key of a layer's weight tensor in a PyTorch state dict (``conv1`` ->
    ``conv1.weight``): where a model file stores the shared values of that layer."""
    return f"{layer}.weight"


def file_meta(*, granularity: str, init: str, seed: int, coder: str, codebook_dtype: str) -> dict:
    """The ``meta`` object of a model file written by ``--mode encode``.

    It holds only what decides the file (the clustering and coding settings), never paths or
    trial numbers, so the exploration can compute the exact size of the file that encoding any
    of its points will write (:class:`ModelFileSizer`). Provenance goes to ``encoding.json``.
    """
    return {
        "granularity": granularity,
        "init": init,
        "seed": int(seed),
        "coder": coder,
        "codebook_dtype": codebook_dtype,
    }


class ModelFileSizer:
    """Exact byte size of the model file of one network for any set of shared layers.

    Every tensor not shared is stored ``raw``; its manifest entry (chunk length and crc32) is
    computed once here. A shared tensor's entry comes from :meth:`shared_entry` (cache it per
    (layer, k)); a raw tensor whose values changed (a corrected bias, re-estimated BatchNorm
    statistics) from :meth:`raw_entry`: same length, another crc32, so another deflated
    manifest. A size then costs one manifest serialisation and deflate (about a millisecond
    for ResNet-20), and equals ``len(encode_model(state, shared, ...))`` byte for byte.

    Args:
        state: every tensor of the model, name -> array, in file order (as for
            :func:`encode_model`).
        network: the network name the file records.
        meta: the file's meta object (:func:`file_meta`).
        coder, codebook_dtype: how shared tensors are coded.
    """

    def __init__(
        self,
        state: Mapping[str, np.ndarray],
        *,
        network: str,
        meta: Mapping[str, Any],
        coder: str = DEFAULT_CODER,
        codebook_dtype: str = DEFAULT_CODEBOOK_DTYPE,
    ) -> None:
        payloads = model_payloads(state, {}, coder=coder, codebook_dtype=codebook_dtype)
        self._raw = {p.name: manifest_entry(p) for p in payloads}
        self._shapes = {p.name: tuple(p.shape) for p in payloads}
        self.network = network
        self.meta = dict(meta)
        self.coder = coder
        self.codebook_dtype = codebook_dtype

    def __contains__(self, name: str) -> bool:
        return name in self._raw

    def shared_entry(self, name: str, shared: SharedWeights | SparseShared) -> dict:
        """The manifest entry of tensor ``name`` stored shared, or pruned and shared
        (``sparse_shared``), its chunks coded for real."""
        sparse = isinstance(shared, SparseShared)
        shape = shared.shape if sparse else tuple(shared.indices.shape)
        if self._shapes.get(name) != shape:
            raise UserError(
                f"tensor {name!r} of shape {shape} is not in the model "
                f"(or has another shape: {self._shapes.get(name)})"
            )
        encode = encode_sparse_shared if sparse else encode_shared
        payload = encode(name, shared, coder=self.coder, codebook_dtype=self.codebook_dtype)
        return manifest_entry(payload)

    def raw_entry(self, name: str, array: np.ndarray) -> dict:
        """The manifest entry of tensor ``name`` stored raw with the values ``array`` (same
        shape as the model's tensor) instead of the model's own."""
        array = np.asarray(array)
        if self._shapes.get(name) != tuple(array.shape):
            raise UserError(
                f"tensor {name!r} of shape {array.shape} is not in the model "
                f"(or has another shape: {self._shapes.get(name)})"
            )
        return manifest_entry(encode_raw(name, array))

    def size(self, entries: Mapping[str, dict]) -> int:
        """Bytes of the file whose tensors named in ``entries`` are stored as those entries say
        (:meth:`shared_entry` or :meth:`raw_entry` results) and all others raw, as given."""
        unknown = [name for name in entries if name not in self._raw]
        if unknown:
            raise UserError(f"tensor {unknown[0]!r} is not in the model")
        entries = [entries.get(name, raw) for name, raw in self._raw.items()]
        return container_size(self.network, entries, self.meta)
