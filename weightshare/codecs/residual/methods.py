"""Residual methods by name, and whole state dicts -> residual file -> state dicts.

A residual file is an ordinary model file (docs/format.md) whose tensors use the codecs of
:mod:`.codecs`; its ``meta.residual`` object names the method, the grid and the sha256
fingerprint of the reference (the previous epoch) the decoder must hold. Every tensor of the
state dict is in it, BatchNorm buffers and integer counters included.

=====================  ========  =============================================================
method                 lossless  floating tensors / other tensors
=====================  ========  =============================================================
``Float16``            no        ``fp16`` (no reference needed) / ``raw``
``ResidualFloat16``    no        ``res_fp16`` / ``res_int``
``ResEntropy16bits``   no        ``res_grid`` (16-bit grid, step ``2**-15``) / ``res_int``
``ResEntropy``         yes       ``res_int`` / ``res_int``
=====================  ========  =============================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightshare.codecs.container import (
    DEFAULT_MAX_ELEMENTS,
    MAX_NAME_CHARS,
    FormatError,
    Manifest,
    read_container,
    write_container,
)
from weightshare.codecs.residual import codecs, grid
from weightshare.codecs.tensors import check_chunk_kinds, decode_tensor, dtype_name, encode_raw
from weightshare.errors import UserError
from weightshare.validation import check_choice, check_int

FILE_KIND = "residual"


@dataclass(frozen=True)
class GridSettings:
    """The ``ResEntropy16bits`` grid.

    Attributes:
        step_exp: step ``2**step_exp`` of every floating tensor (default -15).
        level_bits: signed grid width in bits (default 16: ``|level| <= 32767``).
        tensor_step_exp: per-tensor overrides, state-dict name -> step exponent.
    """

    step_exp: int = grid.DEFAULT_STEP_EXP
    level_bits: int = grid.DEFAULT_LEVEL_BITS
    tensor_step_exp: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self):
        check_int("step_exp", self.step_exp, *grid.STEP_EXP_RANGE)
        check_int("level_bits", self.level_bits, *grid.LEVEL_BITS_RANGE)
        for name, exp in self.tensor_step_exp.items():
            check_int(f"step_exp of tensor {name!r}", exp, *grid.STEP_EXP_RANGE)

    def step_exp_of(self, name: str) -> int:
        """The step exponent of tensor ``name``."""
        return self.tensor_step_exp.get(name, self.step_exp)


@dataclass(frozen=True)
class ResidualMethod:
    """One residual method.

    Attributes:
        name: registry key (the seed's method names).
        lossless: decoding gives the current epoch bit for bit.
        needs_reference: the decoder needs the previous epoch.
        description: one line for ``--help`` and reports.
        encode_float: codes one floating tensor ``(name, cur, prev, grid) -> TensorPayload``.
        encode_other: codes one non-floating tensor (integers, booleans).
    """

    name: str
    lossless: bool
    needs_reference: bool
    description: str
    encode_float: Callable
    encode_other: Callable


def _grid(name, cur, prev, settings: GridSettings):
    return codecs.encode_res_grid(
        name, cur, prev, step_exp=settings.step_exp_of(name), level_bits=settings.level_bits
    )


METHODS: dict[str, ResidualMethod] = {
    m.name: m
    for m in (
        ResidualMethod(
            "Float16",
            False,
            False,
            "every floating tensor cast to float16 (no reference)",
            lambda name, cur, prev, g: codecs.encode_fp16(name, cur),
            lambda name, cur, prev, g: encode_raw(name, cur),
        ),
        ResidualMethod(
            "ResidualFloat16",
            False,
            True,
            "float16 of cur - prev",
            lambda name, cur, prev, g: codecs.encode_res_fp16(name, cur, prev),
            lambda name, cur, prev, g: codecs.encode_res_int(name, cur, prev),
        ),
        ResidualMethod(
            "ResEntropy16bits",
            False,
            True,
            "cur - prev rounded to a 16-bit fixed-point grid (step 2^-15), rANS coded",
            _grid,
            lambda name, cur, prev, g: codecs.encode_res_int(name, cur, prev),
        ),
        ResidualMethod(
            "ResEntropy",
            True,
            True,
            "lossless: exact integer residual of the bit patterns, rANS coded",
            lambda name, cur, prev, g: codecs.encode_res_int(name, cur, prev),
            lambda name, cur, prev, g: codecs.encode_res_int(name, cur, prev),
        ),
    )
}
METHOD_NAMES = tuple(METHODS)


@dataclass(frozen=True)
class DecodedResidual:
    """A decoded residual file.

    Attributes:
        manifest: the file's manifest.
        state: tensor name -> numpy array (native byte order, the stored dtype), file order.
    """

    manifest: Manifest
    state: dict[str, np.ndarray] = field(repr=False)

    @property
    def method(self) -> str:
        """The method that wrote the file."""
        return self.manifest.meta[FILE_KIND]["method"]


def fingerprint(state: Mapping[str, np.ndarray]) -> str:
    """sha256 (hex) of names, dtypes, shapes and little-endian bytes, in the mapping's order."""
    digest = hashlib.sha256()
    for name, value in state.items():
        array = np.asarray(value)
        kind = dtype_name(array.dtype) or str(array.dtype)
        digest.update(f"{name}\0{kind}\0{list(array.shape)}\0".encode())
        digest.update(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).data)
    return digest.hexdigest()


def _describe(array: np.ndarray) -> str:
    return f"{dtype_name(array.dtype) or array.dtype} {list(array.shape)}"


def check_pair(
    cur: Mapping[str, np.ndarray],
    prev: Mapping[str, np.ndarray],
    cur_label: str = "the current epoch",
    prev_label: str = "the previous epoch",
) -> None:
    """Same tensor names, shapes and dtypes in both state dicts, else a one-line UserError."""
    missing = [name for name in cur if name not in prev]
    extra = [name for name in prev if name not in cur]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{missing[:3]} only in {cur_label}")
        if extra:
            parts.append(f"{extra[:3]} only in {prev_label}")
        raise UserError(f"the two epochs hold different tensors: {'; '.join(parts)}")
    for name, value in cur.items():
        a, b = np.asarray(value), np.asarray(prev[name])
        if a.shape != b.shape or a.dtype.newbyteorder("=") != b.dtype.newbyteorder("="):
            raise UserError(
                f"tensor {name!r} is {_describe(a)} in {cur_label} but {_describe(b)} in "
                f"{prev_label}; residuals need the same shape and dtype"
            )


def encode_residual(
    cur: Mapping[str, np.ndarray],
    prev: Mapping[str, np.ndarray] | None,
    *,
    method: str,
    network: str = "",
    settings: GridSettings | None = None,
    meta: Mapping[str, Any] | None = None,
) -> bytes:
    """Encode the state dict ``cur`` as a residual against ``prev``.

    Args:
        cur: every tensor of the current epoch, name -> array (any shape, 0-d included),
            dtypes float16/32/64, int8/16/32/64, uint8, bool. Written in this order.
        prev: the previous epoch (what the decoder holds: for a lossy chain, its own
            reconstruction), same names, shapes and dtypes; None only for ``Float16``.
        method: one of ``METHOD_NAMES``.
        network: registry name recorded in the file ("" when unknown).
        settings: the grid of ``ResEntropy16bits`` (default step ``2**-15``, 16 bits).
        meta: extra JSON recorded under ``meta`` (provenance).

    Returns:
        The file's bytes.

    Raises:
        UserError: unknown method, missing reference, or tensors that differ between epochs.
    """
    check_choice("method", method, METHOD_NAMES)
    spec = METHODS[method]
    settings = settings or GridSettings()
    if not isinstance(network, str) or len(network) > MAX_NAME_CHARS:
        raise UserError(f"network must be a string of <= {MAX_NAME_CHARS} chars; got {network!r}")
    if not cur:
        raise UserError("the current epoch holds no tensors")
    arrays = {}
    for name, value in cur.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
            raise UserError(f"tensor names must be strings of 1 to {MAX_NAME_CHARS} chars")
        array = np.asarray(value)
        if dtype_name(array.dtype) is None:
            raise UserError(
                f"tensor {name!r} has dtype {array.dtype}; supported: float16/32/64, "
                "int8/16/32/64, uint8, bool"
            )
        arrays[name] = array
    reference = None
    if spec.needs_reference:
        if prev is None:
            raise UserError(f"method {method} needs the previous epoch (--pre-epoch)")
        check_pair(arrays, prev)
        reference = {name: np.asarray(prev[name]) for name in arrays}
    payloads = []
    for name, array in arrays.items():
        ref = reference[name] if reference is not None else None
        floating = np.issubdtype(array.dtype, np.floating)
        if floating and not (method == "Float16" and array.dtype.itemsize == 2):
            payloads.append(spec.encode_float(name, array, ref, settings))
        else:
            payloads.append(spec.encode_other(name, array, ref, settings))
    info: dict[str, Any] = {"method": method, "lossless": spec.lossless}
    if method == "ResEntropy16bits":
        info.update(step_exp=settings.step_exp, level_bits=settings.level_bits)
    if reference is not None:
        info["reference_sha256"] = fingerprint(reference)
    return write_container(network, payloads, {**dict(meta or {}), FILE_KIND: info})


def read_residual_manifest(data: bytes | bytearray | memoryview, **kwargs):
    """``(manifest, chunks, info)`` of a residual file; FormatError if it is not one."""
    manifest, chunks = read_container(data, **kwargs)
    info = manifest.meta.get(FILE_KIND)
    if (
        not isinstance(info, dict)
        or not isinstance(info.get("method"), str)
        or info["method"] not in METHODS
    ):
        raise FormatError(
            "not a residual file (its manifest has no meta.residual with a known method); "
            "decode ordinary model files with --mode decode"
        )
    needs = METHODS[info["method"]].needs_reference
    sha = info.get("reference_sha256")
    if needs and not (isinstance(sha, str) and len(sha) == 64):
        raise FormatError("corrupt residual file: meta.residual.reference_sha256 is missing")
    return manifest, chunks, info


def _check_reference(manifest: Manifest, prev: Mapping[str, np.ndarray]) -> None:
    """The reference holds exactly the file's tensors, with their shapes and dtypes."""
    names = {entry.name for entry in manifest.tensors}
    missing = [entry.name for entry in manifest.tensors if entry.name not in prev]
    extra = [name for name in prev if name not in names]
    if missing or extra:
        raise UserError(
            f"the previous epoch does not fit the file: missing {missing[:3]}, "
            f"unexpected {extra[:3]}"
        )
    for entry in manifest.tensors:
        array = np.asarray(prev[entry.name])
        if tuple(array.shape) != entry.shape or dtype_name(array.dtype) != entry.dtype:
            raise UserError(
                f"tensor {entry.name!r} is {_describe(array)} in the previous epoch but "
                f"{entry.dtype} {list(entry.shape)} in the file"
            )


def decode_residual(
    data: bytes | bytearray | memoryview,
    prev: Mapping[str, np.ndarray] | None,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> DecodedResidual:
    """Rebuild the current epoch from a residual file and the previous epoch.

    Args:
        data: the whole file.
        prev: the reference the file was encoded against (checked by fingerprint); may be None
            for ``Float16`` files.
        max_elements: refuse files declaring more scalars (bounds allocations).

    Returns:
        The :class:`DecodedResidual`.

    Raises:
        FormatError: corrupt, truncated or crafted bytes, or not a residual file.
        UserError: no reference, or not the reference the file was encoded against.
    """
    max_elements = check_int("max_elements", max_elements, 0)
    manifest, chunks, info = read_residual_manifest(data, max_elements=max_elements)
    reference = None
    if METHODS[info["method"]].needs_reference:
        if prev is None:
            raise UserError(f"this {info['method']} file needs the previous epoch (--pre-epoch)")
        _check_reference(manifest, prev)
        reference = {entry.name: np.asarray(prev[entry.name]) for entry in manifest.tensors}
        if fingerprint(reference) != info["reference_sha256"]:
            raise UserError(
                "the previous epoch given is not the one this file was encoded against "
                "(reference sha256 differs); pass the same --pre-epoch as the encoder (for a "
                "lossy chain: the decoded previous epoch)"
            )
    state = {}
    for entry, views in zip(manifest.tensors, chunks, strict=True):
        codec = codecs.RESIDUAL_CODECS.get(entry.codec)
        if codec is None or not codec.needs_reference:
            state[entry.name] = decode_tensor(entry, views)
            continue
        if reference is None:
            raise FormatError(
                f"corrupt residual file: tensor {entry.name!r} is a residual ({entry.codec}) "
                f"but the file's method {info['method']} has no previous epoch"
            )
        check_chunk_kinds(entry, codec.chunk_kinds)
        state[entry.name] = codec.decode(entry, views, reference[entry.name])
    return DecodedResidual(manifest, state)
