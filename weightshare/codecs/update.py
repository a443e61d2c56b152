"""Update files: what the server sends a device in one round of partial updating (issue 12;
the rounds are in :mod:`weightshare.updating`, docs/updating.md).

An update file is a version-1 model file (docs/format.md) whose tensors use one more tensor
codec, ``pu_delta``: the positions that changed and their new values as residuals against the
**base** state dict the device holds (its deployed model, the shared random init regenerated
from the seed, or all zeros). Tensors that did not change are absent; the device keeps its own.
The file's ``meta.partial_update`` object names the coding, the base kind and the sha256 of the
base (``weightshare.codecs.residual.fingerprint``); a decoder holding any other base refuses.

``pu_delta`` params and chunks (in payload order)::

    positions  "all"    every element changed             no chunk
               "gaps"   sorted flat indices as gaps        pos_symbols, pos_bits
               "bitmap" one bit per element, LSB first     bitmap   (ceil(size / 8) bytes)
    count      number of changed elements (1..size)
    values     "res_int"  exact (lossless)                 symbols, bits
               "res_grid" 2**step_exp grid, level_bits     symbols, bits, escapes

Gaps: ``g_0 = i_0``, ``g_j = i_j - i_{j-1} - 1``, log-bucketed and rANS-coded exactly like a
residual (``residual.buckets`` + ``residual.categorical``); the encoder keeps whichever of gaps
and bitmap is smaller. The values are the ``count`` changed elements in index order, coded by the
residual checkpoint codec (``res_int`` or ``res_grid``) against the base's elements at the same
positions, so the device rebuilds them bit for bit (lossless) or within ``2**(step_exp - 1)``.

Numpy, constriction and the standard library only: this is the device-side decoder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightshare.codecs.container import (
    DEFAULT_MAX_ELEMENTS,
    FormatError,
    Manifest,
    TensorEntry,
    TensorPayload,
    read_container,
    write_container,
)
from weightshare.codecs.residual import buckets, check_pair, codecs, fingerprint, grid, varbits
from weightshare.codecs.residual.categorical import decode_symbols, encode_symbols
from weightshare.codecs.tensors import dtype_name
from weightshare.errors import UserError
from weightshare.validation import check_choice

FILE_KIND = "partial_update"
CODEC = "pu_delta"
CODINGS = ("lossless", "grid16")
BASES = ("deployed", "init", "zero")
POSITIONS = ("all", "gaps", "bitmap")
GRID_STEP_EXP = grid.DEFAULT_STEP_EXP  # the checkpoint codec's 16-bit grid: step 2**-15
GRID_LEVEL_BITS = grid.DEFAULT_LEVEL_BITS
_VALUE_KINDS = {"res_int": ("symbols", "bits"), "res_grid": ("symbols", "bits", "escapes")}
_POSITION_KINDS = {"all": (), "gaps": ("pos_symbols", "pos_bits"), "bitmap": ("bitmap",)}


@dataclass(frozen=True)
class DecodedUpdate:
    """An applied update file.

    Attributes:
        manifest: the file's manifest.
        state: the device's new state dict, name -> array (the base's order, dtypes, shapes).
        changed: name -> number of elements the file changed (tensors absent: unchanged).
    """

    manifest: Manifest
    state: dict[str, np.ndarray] = field(repr=False)
    changed: dict[str, int]

    @property
    def info(self) -> Mapping[str, Any]:
        """The file's ``meta.partial_update`` object."""
        return self.manifest.meta[FILE_KIND]


def _flat(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")).reshape(-1)


def _bits_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise "same bit pattern" of two flat arrays of one dtype (NaN payloads, -0.0)."""
    kind = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return a.view(kind) == b.view(kind)


def _encode_gaps(index: np.ndarray) -> tuple[bytes, bytes]:
    gaps = np.diff(index, prepend=-1) - 1
    symbols, widths, offsets = buckets.to_buckets(gaps.astype(np.uint64))
    return encode_symbols(symbols), varbits.pack_varbits(offsets, widths)


def _positions(index: np.ndarray, size: int) -> tuple[str, tuple[tuple[str, bytes], ...]]:
    """The cheaper position coding of sorted flat ``index`` ``(n,)`` in a tensor of ``size``."""
    if index.size == size:
        return "all", ()
    symbols, bits = _encode_gaps(index)
    bitmap_bytes = (size + 7) // 8
    if len(symbols) + len(bits) <= bitmap_bytes:
        return "gaps", (("pos_symbols", symbols), ("pos_bits", bits))
    mask = np.zeros(size, dtype=bool)
    mask[index] = True
    return "bitmap", (("bitmap", np.packbits(mask, bitorder="little").tobytes()),)


def _encode_tensor(
    name: str, new: np.ndarray, base: np.ndarray, coding: str
) -> tuple[TensorPayload | None, int]:
    """``pu_delta`` payload of one tensor (None when nothing changes) and its changed count."""
    n, b = _flat(new), _flat(base)
    floating = np.issubdtype(n.dtype, np.floating)
    if coding == "grid16" and floating:
        levels, escaped = grid.quantize(n, b, GRID_STEP_EXP, GRID_LEVEL_BITS)
        index = np.flatnonzero((levels != 0) | escaped)
        values = codecs.encode_res_grid(
            name, n[index], b[index], step_exp=GRID_STEP_EXP, level_bits=GRID_LEVEL_BITS
        )
    else:
        index = np.flatnonzero(~_bits_equal(n, b))
        values = codecs.encode_res_int(name, n[index], b[index])
    if index.size == 0:
        return None, 0
    mode, position_chunks = _positions(index, n.size)
    params = {"positions": mode, "count": int(index.size), "values": values.codec}
    params.update(values.params)
    payload = TensorPayload(
        name,
        tuple(new.shape),
        dtype_name(new.dtype),
        CODEC,
        params,
        position_chunks + values.chunks,
    )
    return payload, int(index.size)


def encode_update(
    new: Mapping[str, np.ndarray],
    base: Mapping[str, np.ndarray],
    *,
    coding: str = "lossless",
    base_kind: str = "deployed",
    network: str = "",
    meta: Mapping[str, Any] | None = None,
) -> tuple[bytes, dict[str, int]]:
    """Encode ``new`` as the changes against ``base``.

    Args:
        new: the server's new state dict, name -> array (every tensor, buffers included).
        base: what the device holds before the update (same names, shapes, dtypes).
        coding: ``lossless`` (values bit for bit) or ``grid16`` (floating values on the 16-bit
            residual grid of the checkpoint codec, error <= 2**-16; others exact).
        base_kind: ``deployed``, ``init`` (the shared init regenerated from the seed) or
            ``zero``; recorded for the device, which must supply that base.
        network: registry name recorded in the file.
        meta: extra JSON recorded in ``meta.partial_update`` (round, method, ...).

    Returns:
        ``(file bytes, changed)``: changed maps each tensor in the file to its changed count.
    """
    check_choice("coding", coding, CODINGS)
    check_choice("base_kind", base_kind, BASES)
    check_pair(new, base, "the new model", "the base model")
    payloads, changed = [], {}
    for name, value in new.items():
        payload, count = _encode_tensor(name, np.asarray(value), np.asarray(base[name]), coding)
        if payload is not None:
            payloads.append(payload)
            changed[name] = count
    info = {
        **dict(meta or {}),
        "coding": coding,
        "base": base_kind,
        "base_sha256": fingerprint({name: np.asarray(v) for name, v in base.items()}),
    }
    return write_container(network, payloads, {FILE_KIND: info}), changed


# --- decoding ------------------------------------------------------------------------------


def _where(entry: TensorEntry) -> str:
    return f"corrupt update file: tensor {entry.name!r}"


def _param_int(entry: TensorEntry, key: str, low: int, high: int) -> int:
    value = entry.params.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FormatError(
            f"{_where(entry)}: param {key!r} must be an int in [{low}, {high}]; got {value!r}"
        )
    return value


def _param_choice(entry: TensorEntry, key: str, allowed: Sequence[str]) -> str:
    value = entry.params.get(key)
    if value not in allowed:
        raise FormatError(
            f"{_where(entry)}: param {key!r} must be one of {tuple(allowed)}; got {value!r}"
        )
    return value


def _decode_positions(
    entry: TensorEntry, mode: str, count: int, views: Sequence[memoryview]
) -> np.ndarray:
    """Sorted flat int64 indices ``(count,)``, each in ``[0, size)``."""
    size = entry.size
    if mode == "all":
        if count != size:
            raise FormatError(f"{_where(entry)}: positions 'all' need count {size}; got {count}")
        return np.arange(size, dtype=np.int64)
    if mode == "bitmap":
        (bitmap,) = views
        if len(bitmap) != (size + 7) // 8:
            raise FormatError(
                f"{_where(entry)}: a bitmap of {size} elements needs {(size + 7) // 8} bytes; "
                f"got {len(bitmap)}"
            )
        bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little")
        if bits[size:].any():
            raise FormatError(f"{_where(entry)}: non-zero padding after the bitmap")
        index = np.flatnonzero(bits[:size])
        if index.size != count:
            raise FormatError(f"{_where(entry)}: the bitmap marks {index.size}, count is {count}")
        return index.astype(np.int64)
    width = max(2, size.bit_length())
    try:
        symbols = decode_symbols(views[0], count, buckets.symbols_for_bits(width))
    except FormatError as exc:
        raise FormatError(f"{_where(entry)} positions: {exc}") from None
    widths = buckets.WIDTHS[symbols]
    if len(views[1]) != varbits.packed_bytes(widths) or not varbits.padding_is_zero(
        views[1], widths
    ):
        raise FormatError(f"{_where(entry)}: the position bits chunk has the wrong length or pad")
    gaps = buckets.from_buckets(symbols, varbits.unpack_varbits(views[1], widths))
    if gaps.size and int(gaps.max()) >= size:
        raise FormatError(f"{_where(entry)}: a position lies outside the {size} elements")
    index = np.cumsum(gaps.astype(np.int64) + 1) - 1
    if index.size and int(index[-1]) >= size:
        raise FormatError(f"{_where(entry)}: a position lies outside the {size} elements")
    return index


def _decode_tensor(
    entry: TensorEntry, views: Sequence[memoryview], base: np.ndarray
) -> tuple[np.ndarray, int]:
    if entry.codec != CODEC:
        raise FormatError(f"{_where(entry)}: codec {entry.codec!r}, an update file uses {CODEC!r}")
    mode = _param_choice(entry, "positions", POSITIONS)
    values_codec = _param_choice(entry, "values", tuple(_VALUE_KINDS))
    count = _param_int(entry, "count", 1, max(1, entry.size))
    extra = {"step_exp", "level_bits"} if values_codec == "res_grid" else set()
    if set(entry.params) != {"positions", "count", "values"} | extra:
        raise FormatError(f"{_where(entry)}: unexpected params {sorted(entry.params)}")
    kinds = tuple(chunk.kind for chunk in entry.chunks)
    expected = _POSITION_KINDS[mode] + _VALUE_KINDS[values_codec]
    if kinds != expected:
        raise FormatError(f"{_where(entry)}: chunks {kinds}, expected {expected}")
    split = len(_POSITION_KINDS[mode])
    index = _decode_positions(entry, mode, count, views[:split])
    sub = TensorEntry(
        entry.name,
        (count,),
        entry.dtype,
        values_codec,
        {k: v for k, v in entry.params.items() if k in extra},
        entry.chunks[split:],
    )
    flat = _flat(base).copy()
    flat[index] = codecs.RESIDUAL_CODECS[values_codec].decode(sub, views[split:], flat[index])
    return flat.reshape(base.shape), count


def read_update_info(data: bytes | bytearray | memoryview, **kwargs):
    """``(manifest, chunks, info)`` of an update file; FormatError if it is not one."""
    manifest, chunks = read_container(data, **kwargs)
    info = manifest.meta.get(FILE_KIND)
    if (
        not isinstance(info, dict)
        or info.get("coding") not in CODINGS
        or info.get("base") not in BASES
        or not (isinstance(info.get("base_sha256"), str) and len(info["base_sha256"]) == 64)
    ):
        raise FormatError(
            "not an update file (its manifest has no meta.partial_update with coding, base "
            "and base_sha256)"
        )
    return manifest, chunks, info


def decode_update(
    data: bytes | bytearray | memoryview,
    base: Mapping[str, np.ndarray],
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> DecodedUpdate:
    """Apply an update file to the device's ``base`` state dict (the device-side decoder).

    Args:
        data: the whole file.
        base: the state dict the file was encoded against (its kind is ``info["base"]``).
        max_elements: refuse files declaring more scalars (bounds allocations).

    Returns:
        The :class:`DecodedUpdate`; ``state`` is a new dict, ``base`` is not modified.

    Raises:
        FormatError: corrupt, truncated or crafted bytes, or not an update file.
        UserError: ``base`` is not the state dict the file was encoded against.
    """
    manifest, chunks, info = read_update_info(data, max_elements=max_elements)
    arrays = {name: np.asarray(value) for name, value in base.items()}
    if fingerprint(arrays) != info["base_sha256"]:
        raise UserError(
            f"the model given is not the {info['base']} model this update was encoded against "
            "(base sha256 differs); apply the updates in order, each to the model the previous "
            "one produced"
        )
    state = {name: array.copy() for name, array in arrays.items()}
    changed = {}
    for entry, views in zip(manifest.tensors, chunks, strict=True):
        if entry.name not in arrays:
            raise FormatError(f"{_where(entry)}: the model has no such tensor")
        array = arrays[entry.name]
        if tuple(array.shape) != entry.shape or dtype_name(array.dtype) != entry.dtype:
            raise FormatError(
                f"{_where(entry)}: {entry.dtype} {list(entry.shape)} in the file, "
                f"{dtype_name(array.dtype)} {list(array.shape)} in the model"
            )
        state[entry.name], changed[entry.name] = _decode_tensor(entry, views, array)
    return DecodedUpdate(manifest, state, changed)


def dense_bytes(state: Mapping[str, np.ndarray]) -> int:
    """Bytes of the dense model: every tensor in its dtype (fp32 parameters: 4 bytes each)."""
    return int(sum(np.asarray(v).nbytes for v in state.values()))


def changed_total(changed: Mapping[str, int], names: Sequence[str]) -> int:
    """Changed elements summed over ``names`` (the conv/FC weights)."""
    return int(sum(changed.get(name, 0) for name in names))


class _AnyChunks(tuple):
    """Compares equal to any chunk-kind tuple, so ``decode_tensor`` reaches the refusal below
    (a ``pu_delta`` tensor's chunks depend on its params)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, tuple)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, tuple)

    __hash__ = tuple.__hash__


class _UpdateOnly:
    """What ``decode_model`` sees of ``pu_delta``: a clear refusal (it needs the base)."""

    name = CODEC
    chunk_kinds = _AnyChunks(_POSITION_KINDS["gaps"] + _VALUE_KINDS["res_int"])

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview]) -> np.ndarray:
        raise FormatError(
            f"tensor {entry.name!r} is a partial update ({CODEC}) against a deployed model: "
            "apply it with weightshare.updating.decode_update (or --mode partial_update --replay)"
        )


MODEL_DECODERS = {CODEC: _UpdateOnly()}
"""What ``decode_model`` uses for ``pu_delta`` (registered in ``TENSOR_CODECS``): a refusal."""
