"""Residual coding of successive checkpoints (epoch B given epoch A) into a model file.

Public API::

    data = encode_residual(cur, prev, method="ResEntropy16bits", network="lenet5_fashionmnist")
    decoded = decode_residual(data, prev)        # DecodedResidual(manifest, state)
    METHOD_NAMES  # ('Float16', 'ResidualFloat16', 'ResEntropy16bits', 'ResEntropy')

``cur`` / ``prev`` are state dicts of numpy arrays (every tensor, buffers included). The file
format is the model container (docs/format.md) with the tensor codecs of :mod:`.codecs`;
docs/residual.md describes the methods, the grid, the bounds and the measured sizes. Imports:
numpy, constriction and the standard library only.
"""

from weightshare.codecs.residual.codecs import RESIDUAL_CODECS
from weightshare.codecs.residual.grid import DEFAULT_LEVEL_BITS, DEFAULT_STEP_EXP
from weightshare.codecs.residual.methods import (
    METHOD_NAMES,
    METHODS,
    DecodedResidual,
    GridSettings,
    ResidualMethod,
    check_pair,
    decode_residual,
    encode_residual,
    fingerprint,
)

__all__ = [
    "DEFAULT_LEVEL_BITS",
    "DEFAULT_STEP_EXP",
    "METHODS",
    "METHOD_NAMES",
    "RESIDUAL_CODECS",
    "DecodedResidual",
    "GridSettings",
    "ResidualMethod",
    "check_pair",
    "decode_residual",
    "encode_residual",
    "fingerprint",
]
