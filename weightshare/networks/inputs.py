"""Datasets a backend can score (``--dataset``) and how their images become model input.

``--dataset`` takes one of:

* ``fashionmnist``: the Fashion-MNIST splits of :mod:`weightshare.networks.datasets` (the
  :class:`~weightshare.networks.datasets.Split` type, unchanged).
* ``imagefolder:PATH``: labelled image files, one sub-folder per class
  (:mod:`weightshare.networks.imagefolder`; ``--data-dir`` for the ImageNet zoo).
* ``npz:PATH``: a NumPy ``.npz`` with ``x`` and ``y`` (loaded without pickle). ``y``: integer
  labels (N,). ``x``: uint8 pixels (N, H, W) or (N, H, W, C), preprocessed like the model's
  native data; or float32 model input already preprocessed, (N, H, W) or 4-D in the model's
  own layout (NCHW for PyTorch/ONNX, NHWC for Keras), fed as is.

Every split type has ``name``, ``labels`` (int64, (N,)), ``len(split)`` and ``head(n)``; the
image side is read by :class:`InputFeeder`, which caches what it built per split.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weightshare.errors import UserError
from weightshare.networks.datasets import Split
from weightshare.networks.transforms import (
    LAYOUTS,
    ImageTransform,
    geometry_of_array,
    normalise,
)

DATASET_KINDS = ("fashionmnist", "imagefolder", "npz", "imagenet")
_CACHE_BYTES = 512 * 2**20  # float32 model input cached whole when it fits in this budget


@dataclass(frozen=True, eq=False)
class ArraySplit:
    """A labelled split held in memory as arrays (the ``npz:`` datasets).

    Attributes:
        name: ``search`` or ``holdout`` (``@F`` appended when scaled).
        images: uint8 pixels (N, H, W[, C]), or float32 model-ready input (see module doc).
        labels: int64 (N,).
    """

    name: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def prepared(self) -> bool:
        """True when ``images`` is float model input, fed without preprocessing."""
        return self.images.dtype != np.uint8

    def head(self, n: int) -> ArraySplit:
        return ArraySplit(f"{self.name}[:{n}]", self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class DatasetChoice:
    """A parsed ``--dataset``: ``kind`` is one of ``DATASET_KINDS``; ``path`` None for
    ``fashionmnist`` (its ``--data-dir``) and ``imagenet`` (``--data-dir``)."""

    kind: str
    path: Path | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_dataset(value: str | None) -> DatasetChoice | None:
    """``fashionmnist``, ``imagefolder:PATH`` or ``npz:PATH`` -> a DatasetChoice (None: None)."""
    if value is None:
        return None
    kind, sep, path = str(value).partition(":")
    if kind in ("fashionmnist", "imagenet") and not sep:
        return DatasetChoice(kind)
    if kind in ("imagefolder", "npz") and sep and path:
        return DatasetChoice(kind, Path(path))
    raise UserError(
        f"--dataset must be one of 'fashionmnist', 'imagefolder:PATH', 'npz:PATH'; got {value!r}"
    )


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` of an ``.npz`` file, checked (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data or "y" not in data:
                raise UserError(
                    f"{path} must hold arrays 'x' (images) and 'y' (labels); has {sorted(data)}"
                )
            x, y = data["x"], data["y"]
    except FileNotFoundError:
        raise UserError(f"--dataset npz file {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npz file ({exc})") from None
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.shape[0] != x.shape[0]:
        raise UserError(
            f"{path}: 'y' must be integer labels of shape (N,) matching x's N; "
            f"got y {y.dtype} {y.shape}, x {x.shape}"
        )
    if x.ndim not in (3, 4) or not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
        raise UserError(
            f"{path}: 'x' must be uint8 pixels or float input of shape (N, H, W) or 4-D; "
            f"got {x.dtype} {x.shape}"
        )
    if y.size and y.min() < 0:
        raise UserError(f"{path}: labels must be >= 0; got {int(y.min())}")
    if x.shape[0] < 2:
        raise UserError(f"{path} holds {x.shape[0]} image: at least 2 are needed")
    x = x if x.dtype == np.uint8 else x.astype(np.float32)
    return x, y.astype(np.int64)


def load_dataset_split(choice: DatasetChoice, name: str, data_dir=None, dataset_scale: float = 1.0):
    """The ``search`` or ``holdout`` split of a dataset (fixed, seeded; see each loader).

    ``fashionmnist`` reads ``data_dir`` (the IDX files); ``imagenet`` reads ``data_dir`` as an
    image folder; ``imagefolder``/``npz`` read ``choice.path``.
    """
    from weightshare.networks.datasets import load_split, scaled_length, search_holdout_indices

    if choice.kind == "fashionmnist":
        return load_split(name, data_dir, dataset_scale)
    if choice.kind in ("imagefolder", "imagenet"):
        from weightshare.networks.imagefolder import load_folder_split

        root = choice.path if choice.kind == "imagefolder" else data_dir
        if root is None:
            raise UserError(
                "ImageNet networks need --data-dir DIR: the ImageNet validation images in the "
                "ImageFolder layout (DIR/n01440764/*.JPEG ..., or DIR/val/...)"
            )
        return load_folder_split(name, root, dataset_scale)
    x, y = load_npz(choice.path)
    search, holdout = search_holdout_indices(len(y))
    idx = search if name == "search" else holdout
    n = scaled_length(len(idx), dataset_scale)
    label = name if n == len(idx) else f"{name}@{dataset_scale:g}"
    return ArraySplit(label, x[idx[:n]], y[idx[:n]])


def load_calibration_split(choice: DatasetChoice, n: int, data_dir=None):
    """``n`` calibration images from the *training* images of ``choice`` (fixed, seeded).

    Only Fashion-MNIST has a training split here; the ``imagefolder``, ``npz`` and ImageNet
    datasets hold search and holdout images only, which calibration must never see.

    Raises:
        UserError: the dataset has no training split, or ``n`` is out of range.
    """
    from weightshare.networks.datasets import load_calibration

    if choice.kind != "fashionmnist":
        raise UserError(
            f"--calibration-images needs training images; dataset {choice.kind} has only "
            "search and holdout images (use a Fashion-MNIST network, or drop --clustering "
            "weighted and --correct)"
        )
    return load_calibration(n, data_dir)


def head(split, n: int):
    """The first ``n`` images of any split type, as a split of the same type."""
    if isinstance(split, Split):
        return Split(f"{split.name}[:{n}]", split.images[:n], split.labels[:n])
    return split.head(n)


def part(split, start: int, stop: int):
    """Images ``start .. stop - 1`` of any split type, as a split of the same type named
    ``name[start:stop]`` (so backends that cache inputs per split name keep them apart)."""
    name = f"{split.name}[{start}:{stop}]"
    if isinstance(split, (Split, ArraySplit)):
        return type(split)(name, split.images[start:stop], split.labels[start:stop])
    # FileSplit: a fresh decode cache (the parent's holds the parent's pixels)
    return type(split)(name, split.paths[start:stop], split.labels[start:stop], split.classes)


def image_shape(split) -> tuple[int, ...]:
    """Shape of one image as stored (for messages)."""
    if isinstance(split, (Split, ArraySplit)):
        return tuple(split.images.shape[1:])
    return ("file",)


class InputFeeder:
    """Turns splits into float32 batches for one model (numpy only).

    Args:
        transform: the model family's preprocessing.
        layout: ``NCHW`` or ``NHWC``, the layout the model takes.

    The float32 input of a split is built once and kept when it fits in 512 MiB; larger ones
    keep only their uint8 pixels (held by the split) and are normalised batch by batch.
    """

    def __init__(self, transform: ImageTransform, layout: str = "NCHW") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")
        self.transform = transform
        self.layout = layout
        self._cache: dict[int, tuple[object, np.ndarray]] = {}

    def _pixels(self, split) -> np.ndarray:
        if isinstance(split, (Split, ArraySplit)):
            return geometry_of_array(split.images, self.transform)
        return split.pixels(self.transform)

    def _prepared(self, split) -> np.ndarray:
        x = split.images
        if x.ndim == 3:
            x = x[:, None] if self.layout == "NCHW" else x[..., None]
        return np.ascontiguousarray(x, dtype=np.float32)

    def _source(self, split) -> np.ndarray:
        """uint8 pixels (N, S, S, C), or the float input of a prepared split; cached."""
        key = id(split)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is split:
            return hit[1]
        if isinstance(split, ArraySplit) and split.prepared:
            data = self._prepared(split)
        else:
            pixels = self._pixels(split)
            if pixels.size * 4 <= _CACHE_BYTES:
                data = normalise(pixels, self.transform, self.layout)
            else:
                data = pixels
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (split, data)
        return data

    def batches(self, split, batch_size: int) -> Iterator[np.ndarray]:
        """float32 batches of the split's model input, in order, ``batch_size`` images each."""
        data = self._source(split)
        for start in range(0, len(split), batch_size):
            chunk = data[start : start + batch_size]
            yield (
                chunk
                if chunk.dtype == np.float32
                else normalise(chunk, self.transform, self.layout)
            )

    def first(self, split) -> np.ndarray:
        """The model input of the split's first image, float32 (1, ...)."""
        return next(self.batches(head(split, 1), 1))


def default_batch_size(transform: ImageTransform) -> int:
    """Images per forward pass: about 32 MiB of float32 input, between 1 and 1000."""
    per_image = transform.size * transform.size * transform.channels * 4
    return max(1, min(1000, (32 * 2**20) // per_image))
