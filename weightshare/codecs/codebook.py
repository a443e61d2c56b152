"""Codebook storage: fp32 (exact) or fp16 (rounded to nearest even), and the matching rounding.

With ``fp16`` the decoded weights are the fp16-rounded codebook values, not those the k-means
produced. A candidate stored that way must be evaluated with the same rounding, or its decoded
predictions can differ from the evaluated ones: :func:`round_codebook` gives the
:class:`SharedWeights` the file will actually hold.
"""

from __future__ import annotations

import numpy as np

from weightshare.codecs.container import FormatError
from weightshare.errors import UserError
from weightshare.types import SharedWeights
from weightshare.validation import check_choice

CODEBOOK_DTYPES: dict[str, np.dtype] = {"fp32": np.dtype("<f4"), "fp16": np.dtype("<f2")}
DEFAULT_CODEBOOK_DTYPE = "fp32"
_FP16_MAX = float(np.finfo(np.float16).max)


def encode_codebook(codebook: np.ndarray, codebook_dtype: str) -> bytes:
    """Serialise a float32 codebook ``(G, k)`` (C order) in ``codebook_dtype``.

    Raises:
        UserError: unknown dtype, or an fp16 codebook with a value beyond fp16's range (65504).
    """
    check_choice("codebook_dtype", codebook_dtype, tuple(CODEBOOK_DTYPES))
    values = np.asarray(codebook, dtype=np.float32)
    if codebook_dtype == "fp16":
        _check_fp16_range(values)
    return values.astype(CODEBOOK_DTYPES[codebook_dtype]).tobytes()


def decode_codebook(data: memoryview, groups: int, k: int, codebook_dtype: str) -> np.ndarray:
    """Inverse of :func:`encode_codebook`: float32 ``(groups, k)``.

    Raises:
        FormatError: wrong length or a non-finite value.
    """
    dtype = CODEBOOK_DTYPES[codebook_dtype]
    if len(data) != groups * k * dtype.itemsize:
        raise FormatError(
            f"corrupt codebook: {len(data)} bytes, expected {groups * k * dtype.itemsize} "
            f"({groups} x {k} {codebook_dtype})"
        )
    values = np.frombuffer(data, dtype=dtype).astype(np.float32).reshape(groups, k)
    if not np.isfinite(values).all():
        raise FormatError("corrupt codebook: non-finite values")
    return values


def round_codebook(
    shared: SharedWeights, codebook_dtype: str, *, weights: np.ndarray
) -> SharedWeights:
    """The shared weights as a file with ``codebook_dtype`` stores them.

    Args:
        shared: a clustering result (float32 codebook).
        codebook_dtype: ``"fp32"`` (returns ``shared`` itself) or ``"fp16"``.
        weights: the original weights ``shared`` was computed from (shape ``indices.shape``);
            the inertia is recomputed against the rounded codebook.

    Returns:
        A :class:`SharedWeights` with the same indices and a codebook rounded to fp16 and held
        as float32, so ``dequantize()`` equals what decoding the file gives, bit for bit.

    Raises:
        UserError: unknown dtype, a codebook value beyond fp16's range, or a shape mismatch.
    """
    check_choice("codebook_dtype", codebook_dtype, tuple(CODEBOOK_DTYPES))
    if codebook_dtype == "fp32":
        return shared
    original = np.asarray(weights)
    if original.shape != shared.indices.shape:
        raise UserError(
            f"weights must have the indices' shape {shared.indices.shape}; got {original.shape}"
        )
    _check_fp16_range(shared.codebook)
    codebook = shared.codebook.astype(np.float16).astype(np.float32)
    codebook.setflags(write=False)
    rounded = SharedWeights(
        codebook=codebook,
        indices=shared.indices,
        inertia=0.0,
        k=shared.k,
        granularity=shared.granularity,
        method=shared.method,
    )
    residual = original.astype(np.float64) - rounded.dequantize().astype(np.float64)
    return SharedWeights(
        codebook=codebook,
        indices=shared.indices,
        inertia=float(np.square(residual).sum()),
        k=shared.k,
        granularity=shared.granularity,
        method=shared.method,
    )


def _check_fp16_range(values: np.ndarray) -> None:
    largest = float(np.abs(values).max(initial=0.0))
    if largest > _FP16_MAX:
        raise UserError(
            f"codebook values must lie within fp16's range (|x| <= {_FP16_MAX:g}) to store "
            f"them as fp16; got |x| = {largest:g} (use codebook dtype fp32)"
        )
