"""Canonical layer names for the clusterable weights of an ONNX graph.

ONNX exporters name things differently:

* PyTorch (``torch.onnx``): initializer ``conv1.weight`` (the module path), node
  ``node_conv2d`` (generic). The initializer is the layer's name: ``conv1``, as the PyTorch
  backend lists it.
* TensorFlow/Keras (tf2onnx): initializer ``sequential_1/dense_1/Cast/ReadVariableOp:0`` (or
  ``const_fold_opt__12`` for a folded conv kernel), node ``sequential_1/dense_1/MatMul``. The
  node's innermost scope that is not an op is the layer: ``dense_1``.
* Keras 3 on its torch backend: initializer ``onnx::Conv_37``, node ``/Conv``: no layer name at
  all; the initializer name stays.

:func:`layer_names` picks, per weight: a dotted initializer name ending in ``.weight`` or
``.kernel``, without that ending (a module path); else the innermost non-op scope of the
consuming node's name; else of the initializer's name; else the initializer name itself. Names
that would repeat are qualified by their outer scopes (``a/dense``, ``b/dense``), else fall back
to their initializer names (unique in a graph). Pure string work: no onnx import.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
_SCOPE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_PARAM_SUFFIXES = (".weight", ".kernel")
# Scopes that name an operation or a variable, not a layer: TensorFlow/ONNX op names (CamelCase:
# ``Conv2D`` is an op, ``conv2d`` a Keras layer), Keras 3 op scopes and variable names; compared
# without a trailing ``_N``. Every ``node_*`` scope (torch.onnx's generic node names) is one too.
_OP_SCOPES = frozenset(
    {
        "Add",
        "BiasAdd",
        "Cast",
        "Conv",
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "DepthwiseConv2dNative",
        "Gemm",
        "Identity",
        "MatMul",
        "Mul",
        "PartitionedCall",
        "ReadVariableOp",
        "Reshape",
        "StatefulPartitionedCall",
        "Tensordot",
        "Transpose",
        "bias",
        "convolution",
        "depthwise",
        "kernel",
        "weight",
        "weights",
    }
)


def _is_op_scope(scope: str) -> bool:
    return scope.startswith("node_") or re.sub(r"_\d+$", "", scope) in _OP_SCOPES


def _layer_scopes(path: str) -> list[str]:
    """The scopes of a ``/``-separated path that may name a layer, outermost first."""
    scopes = (re.sub(r":\d+$", "", scope) for scope in path.split("/"))
    return [s for s in scopes if s and _SCOPE.fullmatch(s) and not _is_op_scope(s)]


def scope_name(path: str) -> str | None:
    """The innermost scope of a ``/``-separated path that names a layer, or None.

    ``sequential_1/dense_1/MatMul`` -> ``dense_1``; ``/conv1/Conv`` -> ``conv1``;
    ``dense/kernel:0`` -> ``dense``; ``/Conv``, ``node_conv2d``, ``onnx::Conv_37`` -> None.
    """
    scopes = _layer_scopes(path)
    return scopes[-1] if scopes else None


def _module_path(init_name: str) -> str | None:
    """``conv1.weight`` -> ``conv1`` (a PyTorch parameter path); None for anything else."""
    if _DOTTED.fullmatch(init_name):
        for suffix in _PARAM_SUFFIXES:
            if init_name.endswith(suffix):
                return init_name[: -len(suffix)]
    return None


def layer_names(weights: Sequence[tuple[str, str]]) -> list[str]:
    """One canonical name per clusterable weight.

    Args:
        weights: ``(consuming node name, initializer name)`` per weight, in graph order; node
            names may be empty (they are optional in ONNX); initializer names are unique.

    Returns:
        Unique names, in the same order (see the module docstring for the rules).
    """
    names = [
        _module_path(init) or scope_name(node) or scope_name(init) or init for node, init in weights
    ]
    counts = Counter(names)
    for i, (node, init) in enumerate(weights):
        if counts[names[i]] > 1:  # two ``dense`` scopes: ``a/dense`` and ``b/dense``, else init
            qualified = "/".join(_layer_scopes(node) or _layer_scopes(init))
            names[i] = qualified if qualified and qualified != names[i] else init
    if len(set(names)) != len(names):  # a fallback met another name
        names = [init for _, init in weights]
    return names
