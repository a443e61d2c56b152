"""The PyTorch backend for any dataset and preprocessing, and for TorchScript modules.

:class:`~weightshare.backends.pytorch.PyTorchBackend` turns Fashion-MNIST splits into tensors
itself (and stays the backend of the Fashion-MNIST registry networks, unchanged). This subclass
takes its batches from an :class:`~weightshare.networks.inputs.InputFeeder` instead (ImageNet
folders, ``npz`` arrays, any :class:`~weightshare.networks.transforms.ImageTransform`) and finds
the clusterable layers of TorchScript modules too (``torch.jit.script``/``trace`` output, whose
submodules are not ``nn.Conv2d`` instances but keep their ``original_name``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from weightshare.backends.pytorch import PyTorchBackend, layer_kind
from weightshare.networks.inputs import InputFeeder, default_batch_size
from weightshare.networks.transforms import ImageTransform
from weightshare.types import LayerInfo


class FedPyTorchBackend(PyTorchBackend):
    """A PyTorch model fed by an InputFeeder (NCHW float32 batches).

    Args:
        model: an ``nn.Module`` or TorchScript module; switched to eval mode and owned.
        transform: the model family's preprocessing.
        threads: torch intra-op threads used by :meth:`evaluate`.
        batch_size: images per forward pass (default: about 32 MiB of input).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        transform: ImageTransform,
        threads: int = 2,
        batch_size: int | None = None,
    ) -> None:
        batch_size = batch_size or default_batch_size(transform)
        super().__init__(model, transform.size, threads=threads, batch_size=batch_size)
        self.transform = transform
        self.feeder = InputFeeder(transform, "NCHW")
        self._modules = {name: m for name, m in model.named_modules() if layer_kind(m) is not None}
        self._layers = [
            LayerInfo(name, tuple(m.weight.shape), layer_kind(m))
            for name, m in self._modules.items()
        ]

    def _tensors(self, split):
        """Only the labels are held: images stream through the feeder batch by batch."""
        return None, torch.from_numpy(np.asarray(split.labels, dtype=np.int64))

    def predict(self, split) -> torch.Tensor:
        """Logits, float32 (N, classes), of the current weights on ``split``."""
        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = [
                self.model(torch.from_numpy(x)) for x in self.feeder.batches(split, self.batch_size)
            ]
        return torch.cat(out).reshape(len(split), -1)
