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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from weightshare.backends.base import BackendPlugin
from weightshare.errors import UserError, first_line
from weightshare.networks.inputs import InputFeeder, default_batch_size
from weightshare.networks.transforms import ImageTransform
from weightshare.types import Accuracy, LayerInfo
from weightshare.validation import check_int

if TYPE_CHECKING:
    import torch
    from torch import nn

    from weightshare.networks.datasets import Split


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
    ):
        from weightshare.networks.tensors import SplitTensors

        check_int("--threads", threads, 1)
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

    def predict(self, split: Split) -> torch.Tensor:
        """Logits, float32 (N, classes), of the current weights on ``split``."""
        import torch

        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = [
                self.model(torch.as_tensor(x)) for x in self.feeder.batches(split, self.batch_size)
            ]
        return torch.cat(out).reshape(len(split), -1)

    def evaluate(self, split: Split) -> Accuracy:
        import torch

        start = time.perf_counter()
        logits = self.predict(split)
        seconds = time.perf_counter() - start
        y = torch.from_numpy(np.asarray(split.labels, dtype=np.int64))
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct = (top5[:, 0] == y).numpy()
        n = len(y)
        return Accuracy(
            top1=float(correct.sum()) / n,
            top5=float((top5 == y[:, None]).any(dim=1).sum()) / n,
            n_images=n,
            seconds=seconds,
            correct=correct,
        )

    def n_unclustered(self) -> int:
        clustered = {f"{name}.weight" for name in self._modules}
        return sum(
            t.numel()
            for k, t in self._pristine.items()
            if k not in clustered and t.is_floating_point()
        )


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

    model = backend.model
    size = backend.input_size
    channels = getattr(backend.transform, "channels", 1)
    example = torch.zeros(1, channels, size, size)
    files = []
    if isinstance(model, torch.jit.ScriptModule):
        native = out / f"{stem}.torchscript.pt"
        with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.14, still works
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(model, str(native))
        files.append(native)
        onnx_path = out / f"{stem}.onnx"
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (example,),
                    str(onnx_path),
                    dynamo=False,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                    do_constant_folding=False,  # keep BatchNorm apart: weights stay shared
                )
            files.append(onnx_path)
        except Exception as exc:  # TorchScript export support varies by module
            notes.append(f"ONNX export of the TorchScript module failed ({first_line(exc)})")
        return files
    native = out / f"{stem}.pt"
    torch.save(model.state_dict(), native)
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
