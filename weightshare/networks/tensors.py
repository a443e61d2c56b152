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
