"""Labelled image files in the ImageFolder layout (``ROOT/<class>/<image>``), decoded lazily.

Classes are the sub-directory names sorted by name and numbered from 0 (torchvision's
``ImageFolder`` rule, which for ImageNet's ``n01440764 ...`` folders is the standard 1000-class
index of both torchvision and keras.applications). A root holding a ``val/`` directory is
read from there, so ``--data-dir`` may point at an ImageNet root or at its ``val`` folder.

Splits are fixed and seeded like Fashion-MNIST's: the files, sorted by (class, name), are
permuted with ``SPLIT_SEED`` and cut in two halves, ``search`` and ``holdout``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from weightshare.errors import UserError
from weightshare.networks.transforms import ImageTransform, fit_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True, eq=False)
class FileSplit:
    """A labelled split of image files; decoded on first use and cached per geometry.

    Attributes:
        name: ``search`` or ``holdout`` (``@F`` appended when scaled).
        paths: image file paths, one per label.
        labels: int64 array (N,), class indices.
        classes: class names (directory names), index = label.
    """

    name: str
    paths: tuple[str, ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, n: int) -> FileSplit:
        """The first ``n`` images, as their own split (shares nothing mutable)."""
        return FileSplit(f"{self.name}[:{n}]", self.paths[:n], self.labels[:n], self.classes)

    def pixels(self, transform: ImageTransform) -> np.ndarray:
        """uint8 (N, S, S, C): every image decoded and fitted by ``transform``'s geometry.

        Decoded once per geometry and kept in memory (N * S * S * C bytes, e.g. 150 kB per
        224x224 RGB image).
        """
        key = transform.geometry
        if key not in self._cache:
            self._cache[key] = _decode_all(self.paths, transform)
        return self._cache[key]


def _decode_all(paths: tuple[str, ...], transform: ImageTransform) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    out = np.empty((len(paths), transform.size, transform.size, transform.channels), np.uint8)
    bar = tqdm(paths, desc="decoding images", unit="img", leave=False, disable=len(paths) < 500)
    for i, path in enumerate(bar):
        try:
            with Image.open(path) as image:
                out[i] = fit_image(image, transform)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"image {path} cannot be decoded ({exc})") from None
    return out


def list_image_folder(root: str | os.PathLike) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """Find the labelled images under ``root`` (or ``root/val``).

    Returns:
        (paths sorted by class then file name, int64 labels (N,), class names).

    Raises:
        UserError: the directory is missing or holds no class folder with an image.
    """
    path = Path(root)
    if (path / "val").is_dir():
        path = path / "val"
    if not path.is_dir():
        raise UserError(
            f"image folder {path} does not exist: pass a directory with one sub-folder of "
            "images per class (ImageFolder layout, e.g. DIR/n01440764/x.JPEG)"
        )
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for index, name in enumerate(classes):
        for file in sorted((path / name).iterdir()):
            if file.is_file() and file.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(str(file))
                labels.append(index)
    if not paths:
        raise UserError(
            f"no images found in {path}: expected one sub-folder of images per class "
            f"(ImageFolder layout, extensions {', '.join(IMAGE_EXTENSIONS)})"
        )
    return paths, np.asarray(labels, np.int64), tuple(classes)


def load_folder_split(name: str, root, dataset_scale: float = 1.0) -> FileSplit:
    """The ``search`` or ``holdout`` half of the images under ``root`` (see the module doc)."""
    from weightshare.networks.datasets import scaled_length, search_holdout_indices

    if name not in ("search", "holdout"):
        raise UserError(f"split of an image folder must be 'search' or 'holdout'; got {name!r}")
    paths, labels, classes = list_image_folder(root)
    if len(paths) < 2:
        raise UserError(f"{root} holds {len(paths)} image: at least 2 are needed (search+holdout)")
    search, holdout = search_holdout_indices(len(paths))
    idx = search if name == "search" else holdout
    n = scaled_length(len(idx), dataset_scale)
    label = name if n == len(idx) else f"{name}@{dataset_scale:g}"
    idx = idx[:n]
    return FileSplit(label, tuple(paths[i] for i in idx), labels[idx], classes)
