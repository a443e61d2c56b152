"""Turn a :class:`~weightshare.networks.datasets.Split` into normalised torch tensors."""

from __future__ import annotations

import numpy as np
import torch

from weightshare.networks.datasets import PIXEL_MEAN, PIXEL_STD


def images_to_tensor(images: np.ndarray, input_size: int) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, S, S), normalised, zero-padded (in pixel space) to S."""
    x = torch.from_numpy(np.array(images, dtype=np.float32)).div_(255.0).unsqueeze(1)
    pad = input_size - images.shape[-1]
    if pad < 0:
        raise ValueError(f"input_size {input_size} is smaller than the images {images.shape[-1]}")
    if pad:
        x = torch.nn.functional.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
    return x.sub_(PIXEL_MEAN).div_(PIXEL_STD)


class SplitTensors:
    """The Fashion-MNIST input of a split as one tensor, built once per split and kept.

    A feeder of :class:`~weightshare.backends.pytorch.PyTorchBackend`: :meth:`batches` yields
    slices of :func:`images_to_tensor`'s float32 (N, 1, S, S) tensor.

    Args:
        input_size: side ``S`` of the square input (28 or 32).
    """

    def __init__(self, input_size: int) -> None:
        self.input_size = input_size
        self._cache: dict[tuple[str, int], torch.Tensor] = {}

    def batches(self, split, batch_size: int):
        """float32 (batch, 1, S, S) slices of the split's input, in order."""
        key = (split.name, len(split))
        if key not in self._cache:
            self._cache[key] = images_to_tensor(split.images, self.input_size)
        x = self._cache[key]
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size]
