"""PyTorch backend: an ``nn.Module`` in eval mode, weights swapped in place, restored exactly.

Images reach the model through an injected feeder (anything with ``batches(split,
batch_size)`` yielding NCHW float32 batches): by default the Fashion-MNIST tensors of
:class:`~weightshare.networks.tensors.SplitTensors` (cached per split), or an
:class:`~weightshare.networks.inputs.InputFeeder` for other datasets, the ImageNet zoo and
TorchScript files (:meth:`PyTorchBackend.with_transform`). torch is imported when a backend is
built, not with this module.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from weightshare.backends.base import FISHER_BATCH, BackendPlugin
from weightshare.backends.scoring import accuracy_from_logits
from weightshare.backends.torch_prefix import PrefixRunner
from weightshare.errors import UserError, first_line
from weightshare.networks.inputs import InputFeeder, default_batch_size
from weightshare.networks.transforms import ImageTransform
from weightshare.types import Accuracy, LayerInfo
from weightshare.validation import check_int

if TYPE_CHECKING:
    from torch import nn

    from weightshare.networks.datasets import Split


BN_BATCH = 256  # images per forward pass in PyTorchBackend.reestimate_bn
# Most bytes of prefix activations PyTorchBackend.predict_after keeps (all splits of its current
# layer together): 2 GiB holds ~450,000 images at LeNet-5's largest frontier (6 x 14 x 14
# float32, 4.7 kB an image) but ~440 at a 224x224 MobileNetV2's widest (96 x 112 x 112, 4.8 MB).
# A split that would not fit is not cached: predict_after returns None for it and the caller
# runs the full pass.
PREFIX_CACHE_BYTES = 2 * 2**30


class Feeder(Protocol):
    """Turns a split into the model's input batches."""

    def batches(self, split, batch_size: int) -> Iterable:
        """NCHW float32 batches (numpy arrays or tensors) of ``split``, in order."""
        ...


def layer_kind(module: nn.Module) -> str | None:
    """conv / depthwise_conv / linear for eager and TorchScript modules; None otherwise."""
    import torch
    from torch import nn

    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv2d):
        depthwise = module.groups > 1 and module.groups == module.in_channels
        return "depthwise_conv" if depthwise else "conv"
    if isinstance(module, torch.jit.ScriptModule):
        original = getattr(module, "original_name", "")
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            return None
        if original == "Linear" and weight.dim() == 2:
            return "linear"
        if original == "Conv2d" and weight.dim() == 4:
            groups = getattr(module, "groups", 1)
            return "depthwise_conv" if groups > 1 and weight.shape[1] == 1 else "conv"
    return None


class PyTorchBackend:
    """Wraps a PyTorch model for the exploration.

    Args:
        model: the trained network (``nn.Module`` or TorchScript); it is switched to eval mode
            and owned by the backend.
        input_size: side of the square input tensor the model expects (28 or 32).
        threads: torch intra-op threads used by :meth:`evaluate` (set explicitly: Ray workers
            default to one).
        batch_size: images per forward pass.
        feeder: turns a split into input batches; default: the Fashion-MNIST tensors padded
            to ``input_size`` (:class:`~weightshare.networks.tensors.SplitTensors`).
        prefix_cache_bytes: most bytes of activations :meth:`predict_after` keeps, >= 0
            (default :data:`PREFIX_CACHE_BYTES`, 2 GiB).
    """

    name = "pytorch"

    def __init__(
        self,
        model: nn.Module,
        input_size: int,
        *,
        threads: int = 2,
        batch_size: int = 1000,
        feeder: Feeder | None = None,
        prefix_cache_bytes: int = PREFIX_CACHE_BYTES,
    ):
        from weightshare.networks.tensors import SplitTensors

        check_int("--threads", threads, 1)
        check_int("prefix_cache_bytes", prefix_cache_bytes, 0)
        self.prefix_cache_bytes = prefix_cache_bytes
        self.model = model.eval()
        self.input_size = input_size
        self.threads = threads
        self.batch_size = batch_size
        self.feeder = feeder if feeder is not None else SplitTensors(input_size)
        self.transform: ImageTransform | None = getattr(feeder, "transform", None)
        self._modules = {name: m for name, m in model.named_modules() if layer_kind(m) is not None}
        self._layers = [
            LayerInfo(name, tuple(m.weight.shape), layer_kind(m))
            for name, m in self._modules.items()
        ]
        self._live = model.state_dict(keep_vars=False)  # tensors sharing storage with the model
        self._pristine = {k: v.detach().clone() for k, v in self._live.items()}
        self._prefix = PrefixRunner(model)
        # (layer, id(split) -> (split, frontier values per batch, or None: over the bound))
        self._frontier: tuple[str, dict[int, tuple]] | None = None

    @classmethod
    def with_transform(
        cls,
        model: nn.Module,
        transform: ImageTransform,
        *,
        threads: int = 2,
        batch_size: int | None = None,
    ) -> PyTorchBackend:
        """A model fed by an :class:`InputFeeder` with ``transform`` (NCHW float32 batches).

        ``batch_size`` defaults to about 32 MiB of input (:func:`default_batch_size`).
        """
        return cls(
            model,
            transform.size,
            threads=threads,
            batch_size=batch_size or default_batch_size(transform),
            feeder=InputFeeder(transform, "NCHW"),
        )

    def layers(self) -> list[LayerInfo]:
        return list(self._layers)

    def _module(self, name: str) -> nn.Module:
        try:
            return self._modules[name]
        except KeyError:
            raise UserError(
                f"unknown layer {name!r}; clusterable layers: {', '.join(self._modules)}"
            ) from None

    def get_weights(self, name: str) -> np.ndarray:
        self._module(name)  # validates the name
        return self._pristine[f"{name}.weight"].numpy().copy()

    def current_weights(self, name: str) -> np.ndarray:
        """A float32 copy of the weights layer ``name`` holds right now."""
        return self._module(name).weight.detach().numpy().copy()

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        import torch

        with torch.no_grad():
            for name, value in weights.items():
                param = self._module(name).weight
                array = np.asarray(value, dtype=np.float32)
                if array.shape != tuple(param.shape):
                    raise ValueError(f"{name}: shape {array.shape} != {tuple(param.shape)}")
                param.copy_(torch.from_numpy(array))

    def restore(self) -> None:
        import torch

        with torch.no_grad():
            for key, tensor in self._pristine.items():
                self._live[key].copy_(tensor)

    def predict(self, split: Split) -> np.ndarray:
        """Logits, float32 (N, classes), of the current weights on ``split``."""
        import torch

        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = [
                self.model(torch.as_tensor(x)) for x in self.feeder.batches(split, self.batch_size)
            ]
        return torch.cat(out).reshape(len(split), -1).numpy()

    def predict_after(self, split: Split, layer: str) -> np.ndarray | None:
        """:meth:`predict` when only ``layer``'s weights differ from the pristine ones, running
        the model from ``layer`` on (prefix reuse, :mod:`~weightshare.backends.torch_prefix`).

        The activations that do not depend on ``layer`` are computed on the first call for
        (``split``, ``layer``) and kept until another layer is asked for, at most
        ``prefix_cache_bytes`` of them for all splits together; the logits are bit-identical
        to :meth:`predict`'s. None when the model cannot be split at ``layer``, or when the
        split's activations would take the kept bytes past the bound (known from its first
        batch; that split is then never cached for this layer): call :meth:`predict`.
        """
        import torch

        self._module(layer)  # validates the name
        suffix = self._prefix.suffix(layer)
        if suffix is None:
            return None
        torch.set_num_threads(self.threads)
        if self._frontier is None or self._frontier[0] != layer:
            self._frontier = (layer, {})
        cached = self._frontier[1]
        with torch.inference_mode():
            if id(split) not in cached or cached[id(split)][0] is not split:
                cached[id(split)] = (split, self._frontier_within_bound(suffix, split))
            values = cached[id(split)][1]
            if values is None:
                return None
            out = [suffix.run(v) for v in values]
        return torch.cat(out).reshape(len(split), -1).numpy()

    def prefix_cached_bytes(self) -> int:
        """Bytes of the activations :meth:`predict_after` keeps now (its current layer's)."""
        if self._frontier is None:
            return 0
        return sum(_nbytes(values) for _, values in self._frontier[1].values())

    def _frontier_within_bound(self, suffix, split: Split) -> list | None:
        """The frontier values of each batch of ``split``, or None as soon as the projected
        bytes (those kept so far per image, times the split's images) would take the cache
        past ``prefix_cache_bytes``."""
        import torch

        room = self.prefix_cache_bytes - self.prefix_cached_bytes()
        values, used, seen = [], 0, 0
        for x in self.feeder.batches(split, self.batch_size):
            x = torch.as_tensor(x)
            values.append(suffix.frontier_values(x))
            used += _nbytes(values[-1])
            seen += x.shape[0]
            if used * len(split) > room * seen:  # used / seen bytes per image
                return None
        return values

    def evaluate(self, split: Split) -> Accuracy:

        start = time.perf_counter()
        logits = self.predict(split)
        seconds = time.perf_counter() - start
        return accuracy_from_logits(logits, np.asarray(split.labels, np.int64), seconds)

    # --- calibration (sensitivity-weighted k-means, bias correction, BatchNorm) ----------

    def fisher(self, split: Split, batch_size: int = FISHER_BATCH) -> dict[str, np.ndarray]:
        """Diagonal empirical Fisher of every clusterable weight on ``split``.

        The mean over mini-batches of ``batch_size`` images of the squared gradient of the
        mean cross-entropy (eval mode: BatchNorm uses its running statistics). Computed with
        the weights the layers hold now. Returns layer name -> float64 array of the weight's
        canonical shape, >= 0.
        """
        import torch

        torch.set_num_threads(self.threads)
        params = {name: m.weight for name, m in self._modules.items()}
        totals = {name: torch.zeros_like(p, dtype=torch.float64) for name, p in params.items()}
        flags = {name: p.requires_grad for name, p in params.items()}
        labels = torch.from_numpy(np.asarray(split.labels, dtype=np.int64))
        n_batches, start = 0, 0
        try:
            for p in params.values():
                p.requires_grad_(True)
            for x in self.feeder.batches(split, batch_size):
                x = torch.as_tensor(x)
                y = labels[start : start + x.shape[0]]
                start += x.shape[0]
                logits = self.model(x).reshape(x.shape[0], -1)
                grads = torch.autograd.grad(
                    torch.nn.functional.cross_entropy(logits, y), list(params.values())
                )
                for name, grad in zip(params, grads, strict=True):
                    totals[name] += grad.double().square()
                n_batches += 1
        finally:
            for name, p in params.items():
                p.requires_grad_(flags[name])
        return {name: (t / max(n_batches, 1)).numpy() for name, t in totals.items()}

    def input_means(self, split: Split) -> dict[str, np.ndarray]:
        """Mean input patch of every clusterable layer on ``split``, with the current weights.

        For a conv, the mean over images and output positions of its unfolded input (zero
        padding included), shape ``(groups, in/groups * kh * kw)``; for a linear layer the mean
        input, shape ``(1, in)``. The layer's output mean is then ``W @ mean`` per group (plus
        the bias), which is what bias correction needs. The same forward passes find where each
        layer's bias lives (:meth:`shift_biases`).
        """
        import torch
        from torch.nn import functional as F

        torch.set_num_threads(self.threads)
        sums: dict[str, torch.Tensor] = {}
        counts = dict.fromkeys(self._modules, 0)
        outputs: dict[int, tuple] = {}
        followers: dict[str, nn.Module] = {}
        hooks = []

        def layer_hook(name, module):
            def hook(mod, args, out):
                x = args[0]
                if isinstance(mod, torch.nn.Conv2d):
                    cols = F.unfold(x, mod.kernel_size, mod.dilation, mod.padding, mod.stride)
                    flat = cols.transpose(1, 2).reshape(-1, cols.shape[1])
                else:
                    flat = x.reshape(-1, x.shape[-1])
                total = flat.double().sum(dim=0)
                sums[name] = total if name not in sums else sums[name] + total
                counts[name] += flat.shape[0]
                outputs[id(out)] = (name, weakref.ref(out))

            return hook

        def bn_hook(mod, args, out):
            name, ref = outputs.get(id(args[0]), (None, None))
            if name is not None and ref() is args[0]:  # the very tensor, not a reused id
                followers.setdefault(name, mod)

        for name, module in self._modules.items():
            hooks.append(module.register_forward_hook(layer_hook(name, module)))
        for module in self.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                hooks.append(module.register_forward_hook(bn_hook))
        try:
            with torch.inference_mode():
                for x in self.feeder.batches(split, self.batch_size):
                    outputs.clear()
                    self.model(torch.as_tensor(x))
        finally:
            for handle in hooks:
                handle.remove()
        self._bn_after = followers
        means = {}
        for name, module in self._modules.items():
            groups = getattr(module, "groups", 1)
            means[name] = (sums[name] / max(counts[name], 1)).numpy().reshape(groups, -1)
        return means

    def shift_biases(self, shifts: Mapping[str, np.ndarray]) -> list[str]:
        """Add ``shifts[name]`` (one value per output channel) to each layer's output.

        Into the layer's bias when it has one; else into the BatchNorm that reads the layer's
        output directly (its ``running_mean`` drops by the shift, the same function in eval
        mode). Needs :meth:`input_means` first (it finds those BatchNorms). Returns the layers
        that have neither, left unchanged.
        """
        import torch

        skipped = []
        with torch.no_grad():
            for name, shift in shifts.items():
                module = self._module(name)
                delta = torch.from_numpy(np.asarray(shift, dtype=np.float32))
                if getattr(module, "bias", None) is not None:
                    module.bias.add_(delta)
                elif name in getattr(self, "_bn_after", {}):
                    self._bn_after[name].running_mean.sub_(delta)
                else:
                    skipped.append(name)
        return skipped

    def reestimate_bn(self, split: Split) -> int:
        """Recompute every BatchNorm's running mean and variance on ``split``.

        Train-mode BatchNorm over batches of at most ``BN_BATCH`` images, the momentum of
        each batch set to ``its images / images so far`` (a cumulative average weighted by
        batch size: the running mean is the mean over all images, the running variance the
        mean of the batches' unbiased variances),
        no gradients, then eval mode again; each module's momentum is put back. Returns the
        number of BatchNorm layers re-estimated (0: nothing changed).
        """
        import torch

        torch.set_num_threads(self.threads)
        norms = [
            m
            for m in self.model.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        ]
        if not norms:
            return 0
        momenta = [m.momentum for m in norms]
        try:
            for m in norms:
                m.reset_running_stats()
                m.train()
            seen = 0
            with torch.no_grad():
                for x in self.feeder.batches(split, min(self.batch_size, BN_BATCH)):
                    x = torch.as_tensor(x)
                    seen += x.shape[0]
                    for m in norms:
                        m.momentum = x.shape[0] / seen
                    self.model(x)
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            self.model.eval()
        return len(norms)

    def changed_state(self) -> dict[str, np.ndarray]:
        """Every state-dict tensor other than the clusterable layers' weights whose value
        differs from its pristine one now (what :meth:`shift_biases` and :meth:`reestimate_bn`
        changed: biases, BatchNorm ``running_mean`` / ``running_var`` / ``num_batches_tracked``),
        name -> numpy copy (its own dtype and shape), in state-dict order."""
        import torch

        weights = {f"{name}.weight" for name in self._modules}
        return {
            key: live.detach().numpy().copy()
            for key, live in self._live.items()
            if key not in weights and not torch.equal(live, self._pristine[key])
        }

    def n_unclustered(self) -> int:
        clustered = {f"{name}.weight" for name in self._modules}
        return sum(
            t.numel()
            for k, t in self._pristine.items()
            if k not in clustered and t.is_floating_point()
        )


def _nbytes(values) -> int:
    """Bytes of the tensors in ``values`` (nested tuples / lists; other values count 0)."""
    import torch

    if isinstance(values, torch.Tensor):
        return values.element_size() * values.nelement()
    if isinstance(values, tuple | list):
        return sum(_nbytes(v) for v in values)
    return 0


# --- the plugin: user files, registry networks, writing ----------------------------------


def load_torchscript(path: Path):
    """A TorchScript module on the CPU (TorchScript code only, never unpickled Python)."""
    import torch

    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.14, still loads
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # RuntimeError, ValueError, zip errors ...
        raise UserError(
            f"{path} is not a loadable TorchScript module ({first_line(exc)})"
        ) from None


def _is_torchscript(path: Path, members: tuple[str, ...] | None) -> bool:
    """``torch.jit.save`` output: a zip holding ``code/`` and ``constants.pkl``."""
    return members is not None and any(
        n.endswith("constants.pkl") or "/code/" in n for n in members
    )


def _from_file(path: Path, transform: ImageTransform, threads: int) -> PyTorchBackend:
    return PyTorchBackend.with_transform(load_torchscript(path), transform, threads=threads)


def _from_network(spec, model, transform: ImageTransform, threads: int, **_) -> PyTorchBackend:
    return PyTorchBackend.with_transform(model, transform, threads=threads)


def _write(backend: PyTorchBackend, out: Path, stem: str, notes: list[str]) -> list[Path]:
    """``<stem>.pt`` (state dict) and ``<stem>.onnx``; TorchScript: ``<stem>.torchscript.pt``
    and ``<stem>.onnx`` when the TorchScript exporter manages it (else a note)."""
    import torch

    from weightshare.backends.onnx_export import export_onnx
    from weightshare.networks.checkpoints import save_state_dict
    from weightshare.outputs import as_disk_full, atomic_path, write_bytes_atomic

    model = backend.model
    size = backend.input_size
    channels = getattr(backend.transform, "channels", 1)
    example = torch.zeros(1, channels, size, size)
    files = []
    if isinstance(model, torch.jit.ScriptModule):
        native = out / f"{stem}.torchscript.pt"
        with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.14, still works
            warnings.simplefilter("ignore", FutureWarning)
            buffer = io.BytesIO()
            torch.jit.save(model, buffer)
        write_bytes_atomic(native, buffer.getvalue())
        files.append(native)
        onnx_path = out / f"{stem}.onnx"
        try:
            with (
                atomic_path(onnx_path) as tmp,
                warnings.catch_warnings(),
                contextlib.redirect_stdout(io.StringIO()),
            ):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    dynamo=False,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                    do_constant_folding=False,  # keep BatchNorm apart: weights stay shared
                )
            files.append(onnx_path)
        except Exception as exc:  # TorchScript export support varies by module
            if as_disk_full(exc, onnx_path) is not None:
                raise
            notes.append(f"ONNX export of the TorchScript module failed ({first_line(exc)})")
        return files
    native = save_state_dict(model.state_dict(), out / f"{stem}.pt")
    files.append(native)
    files.append(export_onnx(model, example, out / f"{stem}.onnx"))
    return files


PLUGIN = BackendPlugin(
    name="pytorch",
    model_format="torchscript",
    sniff=_is_torchscript,
    takes=lambda spec: spec.framework == "pytorch",
    from_file=_from_file,
    from_network=_from_network,
    write=_write,
)
