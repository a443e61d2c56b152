"""Tensor codecs of residual files: how one tensor of epoch B is coded given epoch A's.

All of them are listed in :data:`weightshare.codecs.tensors.TENSOR_CODECS` (the container
does not change) and decoded through :data:`MODEL_DECODERS`; the ones that need the reference
tensor decode only through :func:`weightshare.codecs.residual.decode_residual`, and
``decode_model`` says so.

=============  ==========================  ======================================================
codec          chunks                      decodes to
=============  ==========================  ======================================================
``fp16``       ``data``, ``escapes``       ``dtype(fp16 data)``; needs no reference
``res_fp16``   ``data``, ``escapes``       ``dtype(prev + fp16 data)`` (float64 sum)
``res_grid``   ``symbols``, ``bits``,      ``dtype(prev + level * 2**step_exp)`` (float64 sum),
               ``escapes``                 levels log-bucketed (symbols rANS, raw bits)
``res_int``    ``symbols``, ``bits``       exact: zigzag key residual (see ``intdelta``),
                                           log-bucketed, any dtype
=============  ==========================  ======================================================

``data``: float16 little-endian, one per element; NaN marks an escaped element. ``escapes``: the
escaped elements' exact values in the tensor's dtype, little-endian, in element order.
``symbols``: see :mod:`.categorical`. ``bits``: the raw low bits of every bucket, see
:mod:`.varbits` and :mod:`.buckets`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from weightshare.codecs.container import DTYPES, FormatError, TensorEntry, TensorPayload
from weightshare.codecs.residual import buckets, grid, intdelta, varbits
from weightshare.codecs.residual.categorical import decode_symbols, encode_symbols
from weightshare.codecs.tensors import dtype_name

FP16_MAX = 65504.0
FLOAT_DTYPES = ("float16", "float32", "float64")


def _le(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _flat(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")).reshape(-1)


def _payload(name, array, codec, params, chunks) -> TensorPayload:
    return TensorPayload(name, tuple(array.shape), dtype_name(array.dtype), codec, params, chunks)


# --- encoders -------------------------------------------------------------------------------


def _fp16_with_escapes(values: np.ndarray, finite: np.ndarray) -> tuple[bytes, np.ndarray]:
    """fp16 bytes of ``values`` (float64), NaN where not ``finite`` or beyond fp16; the mask."""
    with np.errstate(invalid="ignore", over="ignore"):
        escaped = ~finite | ~(np.abs(values) <= FP16_MAX)
        half = np.where(escaped, np.nan, values).astype("<f2")
        # values just below 65504 may still round to inf
        escaped |= ~np.isfinite(half)
    half[escaped] = np.nan
    return half.tobytes(), escaped


def encode_fp16(name: str, cur: np.ndarray) -> TensorPayload:
    """``fp16``: a float32/float64 tensor cast to float16 (non-finite or > 65504: escaped)."""
    flat = _flat(cur)
    data, escaped = _fp16_with_escapes(flat.astype(np.float64), np.isfinite(flat))
    return _payload(name, cur, "fp16", {}, (("data", data), ("escapes", _le(flat[escaped]))))


def encode_res_fp16(name: str, cur: np.ndarray, prev: np.ndarray) -> TensorPayload:
    """``res_fp16``: float16 of ``cur - prev`` (float64 difference); non-finite: escaped."""
    c, p = _flat(cur), _flat(prev)
    finite = np.isfinite(c) & np.isfinite(p)
    with np.errstate(invalid="ignore", over="ignore"):
        residual = c.astype(np.float64) - p.astype(np.float64)
    data, escaped = _fp16_with_escapes(residual, finite)
    return _payload(name, cur, "res_fp16", {}, (("data", data), ("escapes", _le(c[escaped]))))


def encode_res_grid(
    name: str,
    cur: np.ndarray,
    prev: np.ndarray,
    *,
    step_exp: int = grid.DEFAULT_STEP_EXP,
    level_bits: int = grid.DEFAULT_LEVEL_BITS,
) -> TensorPayload:
    """``res_grid``: the residual on the ``2**step_exp`` grid (see :mod:`.grid`), entropy coded."""
    c, p = _flat(cur), _flat(prev)
    levels, escaped = grid.quantize(c, p, step_exp, level_bits)
    small = levels.astype(np.int32)  # |level| < 2**30
    zig = ((small << 1) ^ (small >> 31)).view(np.uint32)
    symbols, widths, offsets = buckets.to_buckets(zig)
    symbols[escaped] = buckets.symbols_for_bits(level_bits)
    widths[escaped] = 0
    params = {"step_exp": step_exp, "level_bits": level_bits}
    chunks = (
        ("symbols", encode_symbols(symbols)),
        ("bits", varbits.pack_varbits(offsets, widths)),
        ("escapes", _le(c[escaped])),
    )
    return _payload(name, cur, "res_grid", params, chunks)


def encode_res_int(name: str, cur: np.ndarray, prev: np.ndarray) -> TensorPayload:
    """``res_int``: the exact key residual (see :mod:`.intdelta`), log-bucketed; lossless."""
    codes = intdelta.residual_codes(_flat(cur), _flat(prev))
    symbols, widths, offsets = buckets.to_buckets(codes)
    chunks = (
        ("symbols", encode_symbols(symbols)),
        ("bits", varbits.pack_varbits(offsets, widths)),
    )
    return _payload(name, cur, "res_int", {}, chunks)


# --- decoders -------------------------------------------------------------------------------


def _where(entry: TensorEntry) -> str:
    return f"corrupt model file: tensor {entry.name!r} ({entry.codec})"


def _check_float(entry: TensorEntry, allowed: tuple[str, ...]) -> np.dtype:
    if entry.dtype not in allowed:
        raise FormatError(f"{_where(entry)}: dtype {entry.dtype} is not one of {allowed}")
    return DTYPES[entry.dtype].newbyteorder("=")


def _param(entry: TensorEntry, key: str, low: int, high: int) -> int:
    value = entry.params.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FormatError(
            f"{_where(entry)}: param {key!r} must be an int in [{low}, {high}]; got {value!r}"
        )
    return value


def _no_params(entry: TensorEntry) -> None:
    if entry.params:
        raise FormatError(f"{_where(entry)}: unexpected params {sorted(entry.params)}")


def _escapes(entry: TensorEntry, chunk: memoryview, count: int, dtype: np.dtype) -> np.ndarray:
    if len(chunk) != count * dtype.itemsize:
        raise FormatError(
            f"{_where(entry)}: {count} escaped values need {count * dtype.itemsize} bytes, "
            f"the escapes chunk has {len(chunk)}"
        )
    return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype)


def _half(entry: TensorEntry, chunk: memoryview) -> np.ndarray:
    if len(chunk) != 2 * entry.size:
        raise FormatError(
            f"{_where(entry)}: {entry.size} values need {2 * entry.size} bytes of float16, "
            f"the data chunk has {len(chunk)}"
        )
    return np.frombuffer(chunk, dtype="<f2").astype(np.float64)


def _decode_half(
    entry: TensorEntry, chunks: Sequence[memoryview], reference: np.ndarray | None
) -> np.ndarray:
    """``fp16`` (no reference) or ``res_fp16`` (``reference + value``): float16 values from the
    ``data`` chunk, NaN marking an escape whose exact value is in the ``escapes`` chunk."""
    dtype = _check_float(entry, ("float32", "float64"))
    _no_params(entry)
    values = _half(entry, chunks[0])
    escaped = np.isnan(values)
    values = np.where(escaped, 0.0, values)
    with np.errstate(invalid="ignore", over="ignore"):
        if reference is not None:
            values = _flat(reference).astype(np.float64) + values
        out = values.astype(dtype)
    out[escaped] = _escapes(entry, chunks[1], int(escaped.sum()), dtype)
    return out.reshape(entry.shape)


def _bucket_codes(
    entry: TensorEntry, chunks: Sequence[memoryview], max_symbols: int, escape: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """uint64 codes and the escape mask from a ``symbols`` + ``bits`` pair."""
    try:
        symbols = decode_symbols(chunks[0], entry.size, max_symbols)
    except FormatError as exc:
        raise FormatError(f"tensor {entry.name!r}: {exc}") from None
    escaped = symbols == escape if escape is not None else np.zeros(entry.size, dtype=bool)
    widths = buckets.WIDTHS[np.where(escaped, 0, symbols)]
    bits = chunks[1]
    if len(bits) != varbits.packed_bytes(widths):
        raise FormatError(
            f"{_where(entry)}: the raw bits need {varbits.packed_bytes(widths)} bytes, "
            f"the bits chunk has {len(bits)}"
        )
    if not varbits.padding_is_zero(bits, widths):
        raise FormatError(f"{_where(entry)}: non-zero padding after the raw bits")
    offsets = varbits.unpack_varbits(bits, widths)
    return buckets.from_buckets(np.where(escaped, 0, symbols), offsets), escaped


class Fp16Codec:
    """``fp16``: needs no reference (also decodes through ``decode_model``)."""

    name = "fp16"
    chunk_kinds = ("data", "escapes")
    needs_reference = False

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview], reference=None):
        return _decode_half(entry, chunks, None)


class ResFp16Codec:
    """``res_fp16``: ``prev + fp16 residual``."""

    name = "res_fp16"
    chunk_kinds = ("data", "escapes")
    needs_reference = True

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview], reference: np.ndarray):
        return _decode_half(entry, chunks, reference)


class ResGridCodec:
    """``res_grid``: ``prev + level * 2**step_exp``, levels entropy coded, escapes exact."""

    name = "res_grid"
    chunk_kinds = ("symbols", "bits", "escapes")
    needs_reference = True

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview], reference: np.ndarray):
        dtype = _check_float(entry, FLOAT_DTYPES)
        step_exp = _param(entry, "step_exp", *grid.STEP_EXP_RANGE)
        level_bits = _param(entry, "level_bits", *grid.LEVEL_BITS_RANGE)
        if set(entry.params) != {"step_exp", "level_bits"}:
            raise FormatError(f"{_where(entry)}: unexpected params {sorted(entry.params)}")
        escape = buckets.symbols_for_bits(level_bits)
        codes, escaped = _bucket_codes(entry, chunks, escape + 1, escape)
        signed = codes.view(np.int64)  # codes < 2**32
        levels = (signed >> 1) ^ -(signed & 1)
        if np.abs(levels).max(initial=0) > grid.max_level(level_bits):
            raise FormatError(f"{_where(entry)}: a level lies off the {level_bits}-bit grid")
        with np.errstate(invalid="ignore", over="ignore"):
            out = grid.reconstruct(_flat(reference), levels, step_exp)
        out[escaped] = _escapes(entry, chunks[2], int(escaped.sum()), dtype)
        return out.reshape(entry.shape)


class ResIntCodec:
    """``res_int``: exact residual of the bit patterns, any dtype."""

    name = "res_int"
    chunk_kinds = ("symbols", "bits")
    needs_reference = True

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview], reference: np.ndarray):
        _no_params(entry)
        dtype = DTYPES[entry.dtype]
        max_symbols = buckets.symbols_for_bits(8 * dtype.itemsize)
        codes, _ = _bucket_codes(entry, chunks, max_symbols, None)
        out = intdelta.apply_codes(_flat(reference), codes)
        if dtype == np.bool_ and out.view(np.uint8).max(initial=0) > 1:
            raise FormatError(f"{_where(entry)}: decodes to non-0/1 booleans")
        return out.reshape(entry.shape)


RESIDUAL_CODECS = {c.name: c for c in (Fp16Codec(), ResFp16Codec(), ResGridCodec(), ResIntCodec())}
"""Tensor codecs of residual files by name; ``decode(entry, chunks, reference)``."""


class _NeedsReference:
    """What ``decode_model`` sees of a codec that needs the previous epoch: a clear refusal."""

    def __init__(self, codec):
        self.name = codec.name
        self.chunk_kinds = codec.chunk_kinds

    def decode(self, entry: TensorEntry, chunks: Sequence[memoryview]) -> np.ndarray:
        raise FormatError(
            f"tensor {entry.name!r} is a residual ({entry.codec}) against a previous epoch: "
            "decode the file with --mode residual_decode --pre-epoch PREVIOUS FILE"
        )


MODEL_DECODERS = {
    name: codec if not codec.needs_reference else _NeedsReference(codec)
    for name, codec in RESIDUAL_CODECS.items()
}
"""What ``decode_model`` uses for each residual codec (registered in ``TENSOR_CODECS``)."""
