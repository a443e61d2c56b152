"""The model file container: header, manifest, checksummed payload chunks (see docs/format.md).

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic            b"\\x89WSZ\\r\\n\\x1a\\n"
    8       2     version          uint16, FORMAT_VERSION
    10      1     manifest coding  0 = UTF-8 JSON, 1 = zlib-deflated UTF-8 JSON, 2 = raw deflate
                                   against MANIFEST_DICTIONARY_2 (manifest_dictionary.py)
    11      1     reserved         0
    12      4     manifest length  uint32, bytes as stored, <= MAX_MANIFEST_BYTES
    16      4     manifest crc32   uint32, zlib.crc32 of the stored manifest bytes
    20      m     manifest
    20+m    ...   payload: every chunk of every tensor, in manifest order, back to back

The manifest lists tensors; each names a tensor codec (``raw``, ``shared``, later others), its
JSON ``params`` and its chunks (``kind``, ``bytes``, ``crc32``). This module knows nothing about
codecs: it checks the structure, the bounds and the checksums, and hands out chunk views.
Every problem with the bytes raises :class:`FormatError` (a :class:`UserError`).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from weightshare.codecs.manifest_dictionary import MANIFEST_DICTIONARY_2
from weightshare.errors import UserError, first_line

MAGIC = b"\x89WSZ\r\n\x1a\n"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sHBBII")
MANIFEST_JSON, MANIFEST_ZLIB, MANIFEST_DICT = 0, 1, 2  # header byte 10: how the manifest is stored
MANIFEST_CODINGS = (MANIFEST_JSON, MANIFEST_ZLIB, MANIFEST_DICT)

MAX_MANIFEST_BYTES = 8 << 20  # decoded manifest, bytes
MAX_TENSORS = 1 << 16
MAX_NDIM = 8
MAX_DIM = 1 << 40
MAX_CHUNKS = 16
MAX_NAME_CHARS = 512
DEFAULT_MAX_ELEMENTS = 1 << 28  # decoded scalars per file (1 GiB of float32)

# logical dtype name -> little-endian numpy dtype of the decoded tensor
DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "float64": np.dtype("<f8"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
}


class FormatError(UserError):
    """The bytes are not a valid model file (magic, version, manifest, bounds, checksum, stream)."""


@dataclass(frozen=True)
class Chunk:
    """One payload chunk of a tensor.

    Attributes:
        kind: what the chunk holds, named by the tensor codec (e.g. ``"indices"``).
        length: bytes in the payload.
        crc32: ``zlib.crc32`` of those bytes.
    """

    kind: str
    length: int
    crc32: int


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the manifest describes it.

    Attributes:
        name: state-dict key, unique in the file.
        shape: decoded shape (``()`` for a scalar).
        dtype: decoded dtype, a key of ``DTYPES``.
        codec: name of the tensor codec that wrote the chunks (``"raw"``, ``"shared"``, ...).
        params: the codec's JSON parameters (treat as read-only).
        chunks: the chunks in payload order.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    codec: str
    params: Mapping[str, Any] = field(hash=False)
    chunks: tuple[Chunk, ...]

    @cached_property
    def size(self) -> int:
        """Number of scalars of the decoded tensor."""
        return math.prod(self.shape)

    @cached_property
    def coded_bytes(self) -> int:
        """Payload bytes of this tensor (all its chunks)."""
        return sum(chunk.length for chunk in self.chunks)


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest.

    Attributes:
        network: the registry name of the network (free text to the container).
        tensors: every tensor, in payload order.
        meta: free-form JSON object written by the encoder (coder, settings, provenance).
        version: the file's format version.
        manifest_bytes: bytes the manifest occupies in the file (as stored).
        file_bytes: total file size.
    """

    network: str
    tensors: tuple[TensorEntry, ...]
    meta: Mapping[str, Any] = field(hash=False)
    version: int = FORMAT_VERSION
    manifest_bytes: int = 0
    file_bytes: int = 0


@dataclass(frozen=True)
class TensorPayload:
    """What an encoder hands to :func:`write_container` for one tensor.

    Attributes:
        name, shape, dtype, codec, params: as in :class:`TensorEntry`.
        chunks: ``(kind, bytes)`` pairs in payload order.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    codec: str
    params: Mapping[str, Any]
    chunks: tuple[tuple[str, bytes], ...]


# --- writing -------------------------------------------------------------------------------


def write_container(
    network: str, tensors: Sequence[TensorPayload], meta: Mapping[str, Any] | None = None
) -> bytes:
    """Serialise tensors into the container format.

    Args:
        network: network name stored in the manifest.
        tensors: the tensors in the order they are written (and decoded).
        meta: free-form JSON-serialisable object stored as ``manifest["meta"]``.

    Returns:
        The file's bytes. The manifest is stored in the smallest of its codings
        (:func:`pack_manifest`).

    Raises:
        UserError: duplicate names, a manifest over ``MAX_MANIFEST_BYTES``, too many tensors or
            elements, or a non-JSON ``meta``.
    """
    if len(tensors) > MAX_TENSORS:
        raise UserError(f"a model file holds at most {MAX_TENSORS} tensors; got {len(tensors)}")
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise UserError(f"tensor names must be unique; {duplicate!r} appears twice")
    total = sum(math.prod(t.shape) for t in tensors)
    if total > DEFAULT_MAX_ELEMENTS:
        raise UserError(f"a model file holds at most {DEFAULT_MAX_ELEMENTS} scalars; got {total}")
    entries = [manifest_entry(t) for t in tensors]
    coding, stored = pack_manifest(network, entries, meta)
    header = HEADER.pack(MAGIC, FORMAT_VERSION, coding, 0, len(stored), zlib.crc32(stored))
    return b"".join([header, stored, *(blob for t in tensors for _, blob in t.chunks)])


def manifest_entry(tensor: TensorPayload) -> dict:
    """The manifest's JSON object for one tensor (its chunks' lengths and crc32s computed).

    Callers that size many files made of the same tensors (:func:`container_size`) compute it
    once per tensor and reuse it.
    """
    return {
        "name": tensor.name,
        "shape": [int(d) for d in tensor.shape],
        "dtype": tensor.dtype,
        "codec": tensor.codec,
        "params": dict(tensor.params),
        "chunks": [
            {"kind": kind, "bytes": len(blob), "crc32": zlib.crc32(blob)}
            for kind, blob in tensor.chunks
        ],
    }


def pack_manifest(
    network: str, entries: Sequence[dict], meta: Mapping[str, Any] | None = None
) -> tuple[int, bytes]:
    """The manifest as stored: ``(coding, bytes)``, the smallest of plain JSON
    (``MANIFEST_JSON``), zlib (``MANIFEST_ZLIB``) and raw deflate against the preset dictionary
    (``MANIFEST_DICT``), all at level 9; a tie goes to the lower coding.

    Raises:
        UserError: a non-JSON ``meta``, or a manifest over ``MAX_MANIFEST_BYTES``.
    """
    document = {"network": network, "meta": dict(meta or {}), "tensors": list(entries)}
    try:
        text = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise UserError(f"the manifest must be plain JSON (meta included); {exc}") from None
    if len(text) > MAX_MANIFEST_BYTES:
        raise UserError(
            f"the manifest may take at most {MAX_MANIFEST_BYTES} bytes; got {len(text)}"
        )
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=MANIFEST_DICTIONARY_2)
    options = [
        (MANIFEST_JSON, text),
        (MANIFEST_ZLIB, zlib.compress(text, 9)),
        (MANIFEST_DICT, deflater.compress(text) + deflater.flush()),
    ]
    return min(options, key=lambda option: (len(option[1]), option[0]))


def container_size(
    network: str, entries: Sequence[dict], meta: Mapping[str, Any] | None = None
) -> int:
    """Exact byte size of the file :func:`write_container` writes for tensors whose
    :func:`manifest_entry` objects are ``entries`` (same order, network and meta), without
    joining the payloads: header + stored manifest + every chunk."""
    _, stored = pack_manifest(network, entries, meta)
    chunks = sum(chunk["bytes"] for entry in entries for chunk in entry["chunks"])
    return HEADER.size + len(stored) + chunks


# --- reading -------------------------------------------------------------------------------


def read_container(
    data: bytes | bytearray | memoryview, *, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> tuple[Manifest, tuple[tuple[memoryview, ...], ...]]:
    """Parse and verify a container.

    Checks the magic, version, manifest checksum and structure, the bounds (tensors, dims,
    elements, chunk count) and every chunk's length and crc32 before anything is decoded.

    Args:
        data: the whole file.
        max_elements: refuse files whose tensors hold more scalars than this in total (bounds
            what a decoder may allocate).

    Returns:
        ``(manifest, chunks)`` where ``chunks[i][j]`` is a read-only view of chunk ``j`` of
        tensor ``i``.

    Raises:
        FormatError: anything wrong with the bytes.
    """
    view = memoryview(data).cast("B")
    if len(view) < HEADER.size:
        if not len(view):
            raise FormatError("empty file: not a weightshare model file")
        if bytes(view[: len(MAGIC)]) != MAGIC[: len(view)]:
            raise FormatError("not a weightshare model file (bad magic)")
        raise FormatError(
            f"truncated model file: {len(view)} bytes, the header needs {HEADER.size}"
        )
    magic, version, coding, reserved, length, crc = HEADER.unpack_from(view)
    if magic != MAGIC:
        raise FormatError("not a weightshare model file (bad magic)")
    if version != FORMAT_VERSION:
        raise FormatError(
            f"unsupported model file version {version}; this weightshare reads version "
            f"{FORMAT_VERSION}"
        )
    if reserved != 0:
        raise FormatError(f"corrupt model file header (flags {reserved})")
    if coding not in MANIFEST_CODINGS:
        raise _unknown_coding(coding)
    if length > MAX_MANIFEST_BYTES:
        raise FormatError(f"corrupt model file: manifest length {length} > {MAX_MANIFEST_BYTES}")
    end = HEADER.size + length
    if len(view) < end:
        raise FormatError(
            f"truncated model file: {len(view)} bytes, the manifest ends at byte {end}"
        )
    stored = view[HEADER.size : end]
    if zlib.crc32(stored) != crc:
        raise FormatError("checksum mismatch in the manifest (the file is corrupt)")
    manifest = _parse_manifest(manifest_text(coding, stored))
    manifest = _check_manifest(manifest, max_elements)
    payload = view[end:]
    expected = sum(t.coded_bytes for t in manifest.tensors)
    if len(payload) != expected:
        what = "truncated" if len(payload) < expected else "trailing bytes in"
        raise FormatError(
            f"{what} model file: the manifest lists {expected} payload bytes, "
            f"the file holds {len(payload)}"
        )
    chunks, offset = [], 0
    for tensor in manifest.tensors:
        views = []
        for chunk in tensor.chunks:
            part = payload[offset : offset + chunk.length]
            offset += chunk.length
            if zlib.crc32(part) != chunk.crc32:
                raise FormatError(
                    f"checksum mismatch in chunk {chunk.kind!r} of tensor {tensor.name!r} "
                    "(the file is corrupt)"
                )
            views.append(part.toreadonly())
        chunks.append(tuple(views))
    manifest = Manifest(
        manifest.network, manifest.tensors, manifest.meta, version, length, len(view)
    )
    return manifest, tuple(chunks)


def manifest_text(coding: int, stored: bytes | memoryview) -> bytes:
    """The manifest's JSON bytes from the ``stored`` bytes of a header's ``coding``.

    Raises:
        FormatError: an unknown coding, or stored bytes that do not inflate to at most
            ``MAX_MANIFEST_BYTES`` with nothing left over.
    """
    if coding == MANIFEST_JSON:
        return bytes(stored)
    if coding == MANIFEST_ZLIB:
        return _inflate(stored, zlib.decompressobj())
    if coding == MANIFEST_DICT:
        return _inflate(stored, zlib.decompressobj(-15, zdict=MANIFEST_DICTIONARY_2))
    raise _unknown_coding(coding)


def _unknown_coding(coding: int) -> FormatError:
    return FormatError(
        f"unsupported manifest coding {coding} in the model file header; this weightshare reads "
        f"codings {', '.join(map(str, MANIFEST_CODINGS))} (a newer weightshare wrote the file, "
        "or it is corrupt)"
    )


def _inflate(stored: bytes | memoryview, inflater) -> bytes:
    """Inflate at most ``MAX_MANIFEST_BYTES`` (a deflate bomb cannot allocate more)."""
    try:
        text = inflater.decompress(stored, MAX_MANIFEST_BYTES + 1)
    except zlib.error as exc:
        raise FormatError(f"corrupt model file: the manifest does not inflate ({exc})") from None
    if len(text) > MAX_MANIFEST_BYTES:
        raise FormatError(f"corrupt model file: the manifest inflates past {MAX_MANIFEST_BYTES}")
    if not inflater.eof or inflater.unused_data:
        raise FormatError("corrupt model file: the deflated manifest is truncated or padded")
    return text


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return out


def _parse_manifest(text: bytes) -> dict:
    try:
        document = json.loads(
            text.decode("utf-8"),
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(
            f"corrupt model file: the manifest is not valid JSON ({first_line(exc, 120)})"
        ) from None
    if not isinstance(document, dict):
        raise FormatError("corrupt model file: the manifest is not a JSON object")
    return document


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS


def _check_manifest(document: dict, max_elements: int) -> Manifest:
    """The manifest as dataclasses, after checking every field's type and bound."""
    network, meta, tensors = (document.get(key) for key in ("network", "meta", "tensors"))
    if not isinstance(network, str) or len(network) > MAX_NAME_CHARS:
        raise FormatError("corrupt model file: manifest 'network' must be a string")
    if not isinstance(meta, dict):
        raise FormatError("corrupt model file: manifest 'meta' must be an object")
    if not isinstance(tensors, list) or len(tensors) > MAX_TENSORS:
        raise FormatError(
            f"corrupt model file: manifest 'tensors' must be a list of <= {MAX_TENSORS}"
        )
    entries, names, total = [], set(), 0
    for position, raw in enumerate(tensors):
        entry = _check_tensor(raw, position, max_elements)
        if entry.name in names:
            raise FormatError(f"corrupt model file: tensor {entry.name!r} appears twice")
        names.add(entry.name)
        total += entry.size
        if total > max_elements:
            raise FormatError(
                f"model file declares more than {max_elements} scalars (max_elements); "
                "refusing to decode it"
            )
        entries.append(entry)
    return Manifest(network, tuple(entries), meta)


def _check_shape(shape: object, where: str, max_elements: int) -> tuple[int, ...]:
    """``shape`` as a tuple after checking rank, every dimension and the running product.

    The product is taken with each zero counted as one: numpy refuses a shape whose non-zero
    dimensions overflow int64 even when another dimension is 0, and no real tensor is empty
    along one axis and astronomically wide along the others. So the extent of every shape stays
    within ``max_elements`` (each factor checked as it is multiplied in, before any numpy call).
    """
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise FormatError(f"{where}: 'shape' must be a list of <= {MAX_NDIM} ints in [0, 2**40]")
    extent = 1
    for dim in shape:
        if not _is_int(dim, 0, MAX_DIM):
            raise FormatError(
                f"{where}: 'shape' must be a list of <= {MAX_NDIM} ints in [0, 2**40]; "
                f"got {dim!r} in it"
            )
        extent *= max(dim, 1)
        if extent > max_elements:
            raise FormatError(
                f"{where}: shape {shape} spans more than {max_elements} scalars (max_elements; "
                "a zero dimension counts as one); refusing to decode it"
            )
    return tuple(shape)


def _check_tensor(raw: object, position: int, max_elements: int) -> TensorEntry:
    where = f"corrupt model file: manifest tensor #{position}"
    if not isinstance(raw, dict):
        raise FormatError(f"{where} is not an object")
    name, shape, dtype, codec, params, chunks = (
        raw.get(key) for key in ("name", "shape", "dtype", "codec", "params", "chunks")
    )
    if not _is_name(name):
        raise FormatError(f"{where}: 'name' must be a string of 1 to {MAX_NAME_CHARS} characters")
    where = f"corrupt model file: tensor {name!r}"
    shape = _check_shape(shape, where, max_elements)
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise FormatError(f"{where}: unknown dtype {dtype!r}")
    if not _is_name(codec):
        raise FormatError(f"{where}: 'codec' must be a non-empty string")
    if not isinstance(params, dict):
        raise FormatError(f"{where}: 'params' must be an object")
    if not isinstance(chunks, list) or len(chunks) > MAX_CHUNKS:
        raise FormatError(f"{where}: 'chunks' must be a list of <= {MAX_CHUNKS}")
    parsed = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            raise FormatError(f"{where}: a chunk is not an object")
        kind, length, crc = chunk.get("kind"), chunk.get("bytes"), chunk.get("crc32")
        if not _is_name(kind) or not _is_int(length, 0, 1 << 48) or not _is_int(crc, 0, 2**32 - 1):
            raise FormatError(f"{where}: a chunk needs 'kind' (str), 'bytes' and 'crc32' (ints)")
        parsed.append(Chunk(kind, length, crc))
    return TensorEntry(name, shape, dtype, codec, params, tuple(parsed))
