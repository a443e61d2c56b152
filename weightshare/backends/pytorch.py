"""PyTorch backend: an ``nn.Module`` in eval mode, weights swapped in place, restored exactly."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from weightshare.errors import UserError
from weightshare.networks.datasets import Split
from weightshare.networks.tensors import images_to_tensor
from weightshare.types import Accuracy, LayerInfo
from weightshare.validation import check_int


def layer_kind(module: nn.Module) -> str | None:
    """conv / depthwise_conv / linear for eager and TorchScript modules; None otherwise."""
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
        model: the trained network; it is switched to eval mode and owned by the backend.
        input_size: side of the square input tensor the model expects (28 or 32).
        threads: torch intra-op threads used by :meth:`evaluate` (set explicitly: Ray workers
            default to one).
        batch_size: images per forward pass.
    """

    name = "pytorch"

    def __init__(
        self, model: nn.Module, input_size: int, *, threads: int = 2, batch_size: int = 1000
    ):
        check_int("--threads", threads, 1)
        self.model = model.eval()
        self.input_size = input_size
        self.threads = threads
        self.batch_size = batch_size
        self._modules = {name: m for name, m in model.named_modules() if layer_kind(m) is not None}
        self._layers = [
            LayerInfo(name, tuple(m.weight.shape), layer_kind(m))
            for name, m in self._modules.items()
        ]
        self._live = model.state_dict(keep_vars=False)  # tensors sharing storage with the model
        self._pristine = {k: v.detach().clone() for k, v in self._live.items()}
        self._inputs: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

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
        with torch.no_grad():
            for name, value in weights.items():
                param = self._module(name).weight
                array = np.asarray(value, dtype=np.float32)
                if array.shape != tuple(param.shape):
                    raise ValueError(f"{name}: shape {array.shape} != {tuple(param.shape)}")
                param.copy_(torch.from_numpy(array))

    def restore(self) -> None:
        with torch.no_grad():
            for key, tensor in self._pristine.items():
                self._live[key].copy_(tensor)

    def _tensors(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        key = (split.name, len(split))
        if key not in self._inputs:
            self._inputs[key] = (
                images_to_tensor(split.images, self.input_size),
                torch.from_numpy(np.asarray(split.labels, dtype=np.int64)),
            )
        return self._inputs[key]

    def predict(self, split: Split) -> torch.Tensor:
        """Logits, float32 (N, classes), of the current weights on ``split``."""
        x, _ = self._tensors(split)
        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            return torch.cat(
                [self.model(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
            )

    def evaluate(self, split: Split) -> Accuracy:
        start = time.perf_counter()
        logits = self.predict(split)
        seconds = time.perf_counter() - start
        _, y = self._tensors(split)
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
