"""Fashion-MNIST from its standard IDX ``.gz`` files, and the fixed, seeded splits.

Splits (all deterministic, independent of ``--dataset_scale``):

* ``train``: the 60,000 training images.
* ``search`` / ``holdout``: the 10,000 test images permuted once with ``SPLIT_SEED`` and cut in
  two halves of 5,000. ``search`` is all any optimiser may see; ``holdout`` is only for final
  reports. ``dataset_scale=F`` keeps the first ``round(F * 5000)`` images of ``search`` (a
  fraction of the images, never of a batch), so baseline and candidates see the same images.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weightshare.errors import UserError

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SPLITS = ("train", "search", "holdout")
SPLIT_SEED = 20221  # fixed forever: changing it changes every published figure
N_CLASSES = 10
# Mean and std of the 60k training pixels scaled to [0, 1] (computed by tests/networks).
PIXEL_MEAN = 0.2860
PIXEL_STD = 0.3530

_IDX_DTYPES = {0x08: np.uint8}
_MAX_IDX_ITEMS = 100_000_000  # refuse headers that would allocate without bound


@dataclass(frozen=True)
class Split:
    """A labelled image split held in memory.

    Attributes:
        name: ``train``, ``search`` or ``holdout`` (with ``@F`` appended when scaled).
        images: uint8 array of shape (N, 28, 28), raw pixels.
        labels: int64 array of shape (N,), classes in [0, 10).
    """

    name: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def read_idx(path: Path) -> np.ndarray:
    """Read one gzip-compressed IDX file (unsigned-byte data) into an array.

    Args:
        path: an ``*-ubyte.gz`` file.

    Returns:
        uint8 array whose shape is the one the header declares.

    Raises:
        UserError: the file is missing, not gzip, or its header or length is inconsistent.
    """
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read(_MAX_IDX_ITEMS + 1024)
    except FileNotFoundError:
        raise UserError(f"data file not found: {path}") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable gzip IDX file ({exc})") from None
    if len(raw) < 4:
        raise UserError(f"{path} is not an IDX file: {len(raw)} bytes")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 4:
        raise UserError(f"{path} is not an unsigned-byte IDX file (bad magic)")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise UserError(f"{path} is truncated inside its header")
    shape = struct.unpack(">" + "I" * ndim, raw[4:header_end])
    count = math.prod(shape)  # Python ints: a hostile header cannot overflow it
    if count > _MAX_IDX_ITEMS or len(raw) - header_end != count:
        raise UserError(
            f"{path}: header declares {count} items but the file holds {len(raw) - header_end}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(shape)


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The directory holding the four IDX files; explains how to get them when absent."""
    path = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    missing = [name for pair in FILES.values() for name in pair if not (path / name).is_file()]
    if missing:
        raise UserError(
            f"Fashion-MNIST not found in {path} (missing {missing[0]}): install it with "
            "'apt-get install -y dataset-fashion-mnist' or pass --data-dir DIR holding "
            "the IDX .gz files"
        )
    return path


def _load_pair(path: Path, which: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(path / FILES[which][0])
    labels = read_idx(path / FILES[which][1]).astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise UserError(
            f"{path}: {which} images {images.shape} and labels {labels.shape} do not match "
            "the Fashion-MNIST layout (N, 28, 28) / (N,)"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise UserError(f"{path}: {which} labels fall outside [0, {N_CLASSES})")
    return images, labels


def search_holdout_indices(n_test: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the test set for ``search`` and ``holdout``: a seeded permutation cut in half.

    Returns:
        Two int64 arrays, of lengths ``n_test // 2`` and ``n_test - n_test // 2``, disjoint.
    """
    order = np.random.default_rng(seed).permutation(n_test)
    half = n_test // 2
    return order[:half], order[half:]


def scaled_length(n: int, dataset_scale: float) -> int:
    """Images kept by ``--dataset_scale``: ``round(F * n)``, at least 1."""
    if not (isinstance(dataset_scale, (int, float)) and 0.0 < dataset_scale <= 1.0):
        raise UserError(f"--dataset_scale must be a float in (0, 1]; got {dataset_scale!r}")
    return max(1, round(dataset_scale * n))


def load_split(name: str, data_dir=None, dataset_scale: float = 1.0) -> Split:
    """Load one split of Fashion-MNIST.

    Args:
        name: one of ``SPLITS``.
        data_dir: directory with the IDX ``.gz`` files; default the Debian package's.
        dataset_scale: keep the first fraction of the split's images, in (0, 1].
    """
    if name not in SPLITS:
        raise UserError(f"split must be one of {SPLITS}; got {name!r}")
    path = resolve_data_dir(data_dir)
    if name == "train":
        images, labels = _load_pair(path, "train")
    else:
        test_images, test_labels = _load_pair(path, "test")
        search, holdout = search_holdout_indices(len(test_labels))
        idx = search if name == "search" else holdout
        images, labels = test_images[idx], test_labels[idx]
    n = scaled_length(len(labels), dataset_scale)
    label = name if n == len(labels) else f"{name}@{dataset_scale:g}"
    return Split(label, images[:n], labels[:n])


CALIBRATION_SEED = 20231  # fixed: the calibration images of every published figure
DEFAULT_CALIBRATION_IMAGES = 1024


def calibration_indices(n_train: int, n: int, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """Indices of the ``n`` calibration images among ``n_train`` training images.

    The first ``n`` of one seeded permutation, so a smaller ``n`` is a prefix of a larger one.

    Raises:
        UserError: ``n`` is not an int in ``[1, n_train]``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= n_train:
        raise UserError(f"--calibration-images must be an int in [1, {n_train}]; got {n!r}")
    return np.random.default_rng(seed).permutation(n_train)[:n]


def load_calibration(n: int = DEFAULT_CALIBRATION_IMAGES, data_dir=None) -> Split:
    """``n`` images of the Fashion-MNIST *training* split (seeded; never search or holdout).

    Returns:
        A :class:`Split` named ``calibration[N]``: uint8 images (n, 28, 28), int64 labels (n,).
    """
    images, labels = _load_pair(resolve_data_dir(data_dir), "train")
    idx = calibration_indices(len(labels), n)
    return Split(f"calibration[{n}]", images[idx], labels[idx])
