"""Codecs that turn a weight-shared model into a file, and back (format: docs/format.md).

Public API::

    data = encode_model(state, shared, network=..., coder="ans", codebook_dtype="fp32")
    decoded = decode_model(data)            # DecodedModel(manifest, state)
    round_codebook(shared, "fp16", weights=w)   # what an fp16 file stores, for evaluation

Index coders by name (``CODER_NAMES``): ``ans`` (default), ``huffman``, ``fixed``. Residual
checkpoints (epoch B given epoch A): :mod:`weightshare.codecs.residual`. Coders and tensor
codecs are registered by name in explicit tables (``coders.CODERS``, ``tensors.TENSOR_CODECS``)
and imported when first used; importing this package registers nothing. Module imports:
numpy, constriction and the standard library only.
"""

from weightshare.codecs.codebook import CODEBOOK_DTYPES, DEFAULT_CODEBOOK_DTYPE, round_codebook
from weightshare.codecs.coders import (
    CODER_NAMES,
    DEFAULT_CODER,
    decode_indices,
    encode_indices,
    get_coder,
)
from weightshare.codecs.container import DEFAULT_MAX_ELEMENTS, FormatError, Manifest
from weightshare.codecs.model import (
    DecodedModel,
    TensorSize,
    decode_model,
    encode_model,
    original_bytes,
    tensor_sizes,
)

__all__ = [
    "CODEBOOK_DTYPES",
    "CODER_NAMES",
    "DEFAULT_CODEBOOK_DTYPE",
    "DEFAULT_CODER",
    "DEFAULT_MAX_ELEMENTS",
    "DecodedModel",
    "FormatError",
    "Manifest",
    "TensorSize",
    "decode_indices",
    "decode_model",
    "encode_indices",
    "encode_model",
    "get_coder",
    "original_bytes",
    "round_codebook",
    "tensor_sizes",
]
