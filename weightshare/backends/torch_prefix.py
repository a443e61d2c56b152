"""Prefix reuse for PyTorch: run a model from one layer on, the activations before it cached.

When only layer ``L`` differs from the pristine model (step 1 shares one layer at a time),
everything the forward pass computes without reading ``L``'s output is the fp32 model's. The
model is traced once with ``torch.fx``; for ``L`` the graph splits into its **suffix** (``L``
and every node that reads its output, directly or not) and the rest. The rest's values that the
suffix reads (the **frontier**: ``L``'s input, a residual branch's input, ...) are computed
once per batch and kept; each evaluation then runs the suffix only, node by node, with the same
functions, modules and batch shapes as the whole model, so the logits are bit-identical
(``tests/backends/test_torch_prefix.py``).

Models that ``torch.fx`` cannot trace (TorchScript, data-dependent control flow) and layers
called more than once get ``None`` from :meth:`PrefixRunner.suffix`: the caller runs the full
forward pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import fx, nn


class Suffix:
    """The part of a traced graph from one layer on.

    Attributes:
        layer: the layer's module name.
        nodes: the suffix nodes in execution order (the ``output`` node last).
        frontier: nodes outside the suffix whose values the suffix reads.
    """

    def __init__(self, graph_module: fx.GraphModule, layer: str, nodes: list, frontier: list):
        self.graph_module = graph_module
        self.layer = layer
        self.nodes = nodes
        self.frontier = frontier
        self._outside = set(frontier)
        self._suffix = set(nodes)

    def frontier_values(self, x: torch.Tensor) -> tuple:
        """Run every node outside the suffix on the input batch ``x`` (N, C, H, W); the values
        of the frontier nodes, in :attr:`frontier` order."""
        env: dict = {}
        for node in self.graph_module.graph.nodes:
            if node in self._suffix:
                continue
            env[node] = x if node.op == "placeholder" else _run(self.graph_module, node, env)
        return tuple(env[n] for n in self.frontier)

    def run(self, frontier: tuple) -> torch.Tensor:
        """The model's output from the frontier values of one batch (the weights it holds
        now, ``layer``'s included)."""
        env = dict(zip(self.frontier, frontier, strict=True))
        for node in self.nodes:
            if node.op == "output":
                return _args(node.args, env)[0]
            env[node] = _run(self.graph_module, node, env)
        raise RuntimeError("the graph has no output node")


def _args(args, env):
    from torch import fx

    return fx.node.map_arg(args, lambda n: env[n])


def _run(graph_module: fx.GraphModule, node, env):
    """One graph node's value, as ``torch.fx.Interpreter`` computes it."""
    args, kwargs = _args(node.args, env), _args(node.kwargs, env)
    if node.op == "call_module":
        return graph_module.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        obj, *rest = args
        return getattr(obj, node.target)(*rest, **kwargs)
    if node.op == "get_attr":
        obj = graph_module
        for part in node.target.split("."):
            obj = getattr(obj, part)
        return obj
    raise ValueError(f"cannot run graph node {node.op} {node.target}")


class PrefixRunner:
    """Traces ``model`` once (lazily) and gives the :class:`Suffix` of each layer.

    Args:
        model: the eager ``nn.Module`` the backend evaluates (the graph calls its very
            submodules, so weights set on the model are the ones the suffix uses).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._graph_module = None
        self._traced = False
        self._suffixes: dict[str, Suffix | None] = {}

    def _trace(self):
        if not self._traced:
            self._traced = True
            try:
                from torch import fx

                self._graph_module = fx.GraphModule(
                    self.model, fx.Tracer().trace(self.model), "prefix_reuse"
                )
            except Exception:  # untraceable (TorchScript, data-dependent control flow): full pass
                self._graph_module = None
        return self._graph_module

    def suffix(self, layer: str) -> Suffix | None:
        """The suffix of ``layer`` (a module name), or None when the model cannot be traced,
        ``layer`` is not called exactly once, or nothing precedes it."""
        if layer not in self._suffixes:
            self._suffixes[layer] = self._split(layer)
        return self._suffixes[layer]

    def _split(self, layer: str) -> Suffix | None:
        gm = self._trace()
        if gm is None:
            return None
        nodes = list(gm.graph.nodes)
        calls = [n for n in nodes if n.op == "call_module" and n.target == layer]
        if len(calls) != 1:
            return None
        inside = {calls[0]}
        for node in nodes[nodes.index(calls[0]) + 1 :]:
            if any(arg in inside for arg in node.all_input_nodes):
                inside.add(node)
        suffix = [n for n in nodes if n in inside]
        if suffix[-1].op != "output":
            return None
        frontier = list(
            dict.fromkeys(a for n in suffix for a in n.all_input_nodes if a not in inside)
        )
        if all(n.op == "placeholder" for n in frontier):
            return None  # the layer reads the input: nothing to reuse
        return Suffix(gm, layer, suffix, frontier)
