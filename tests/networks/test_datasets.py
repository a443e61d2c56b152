import gzip
import struct

import numpy as np
import pytest

from weightshare.errors import UserError
from weightshare.networks import datasets
from weightshare.networks.datasets import (
    DEFAULT_DATA_DIR,
    load_split,
    read_idx,
    resolve_data_dir,
    search_holdout_indices,
)


def _write_idx(path, payload: bytes):
    with gzip.open(path, "wb") as fh:
        fh.write(payload)
    return path


def test_real_train_split_has_the_standard_shape_and_balanced_classes():
    split = load_split("train")
    assert split.images.shape == (60000, 28, 28) and split.images.dtype == np.uint8
    assert np.bincount(split.labels, minlength=10).tolist() == [6000] * 10


def test_normalisation_constants_match_the_training_pixels():
    pixels = load_split("train").images.astype(np.float64) / 255.0
    assert pixels.mean() == pytest.approx(datasets.PIXEL_MEAN, abs=5e-5)
    assert pixels.std() == pytest.approx(datasets.PIXEL_STD, abs=5e-5)


def test_search_and_holdout_partition_the_test_set_deterministically():
    search, holdout = search_holdout_indices(10000)
    again, _ = search_holdout_indices(10000)
    assert len(search) == len(holdout) == 5000
    assert np.array_equal(search, again)
    assert sorted(np.concatenate([search, holdout]).tolist()) == list(range(10000))


def test_search_split_images_come_from_the_test_set(search_split, holdout_split):
    test_images = read_idx(DEFAULT_DATA_DIR / "t10k-images-idx3-ubyte.gz")
    search_idx, holdout_idx = search_holdout_indices(10000)
    assert np.array_equal(search_split.images, test_images[search_idx])
    assert np.array_equal(holdout_split.images, test_images[holdout_idx])


def test_dataset_scale_keeps_a_prefix_of_the_images_not_of_a_batch(search_split):
    tenth = load_split("search", dataset_scale=0.1)
    assert len(tenth) == 500 and tenth.name == "search@0.1"
    assert np.array_equal(tenth.images, search_split.images[:500])
    assert np.array_equal(tenth.labels, search_split.labels[:500])


@pytest.mark.parametrize("scale", [0.0, -0.5, 1.5, float("nan")])
def test_dataset_scale_out_of_range_is_refused(scale):
    with pytest.raises(UserError, match=r"--dataset_scale must be a float in \(0, 1\]"):
        load_split("search", dataset_scale=scale)


def test_unknown_split_is_refused():
    with pytest.raises(UserError, match="split must be one of"):
        load_split("validation")


def test_missing_data_names_the_apt_command_and_the_flag(tmp_path):
    with pytest.raises(UserError) as err:
        resolve_data_dir(tmp_path)
    assert "apt-get install -y dataset-fashion-mnist" in str(err.value)
    assert "--data-dir" in str(err.value)


def test_read_idx_round_trips_a_small_file(tmp_path):
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = _write_idx(tmp_path / "x.gz", struct.pack(">HBBIII", 0, 8, 3, 2, 3, 4) + data.tobytes())
    assert np.array_equal(read_idx(path), data)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x00\x00", "not an IDX file"),
        (struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 1) + b"\0\0\0\0", "bad magic"),
        (struct.pack(">HBBI", 0, 8, 1, 10) + b"\x01" * 9, "header declares 10 items"),
        (struct.pack(">HBBIIII", 0, 8, 4, 2**31, 2**31, 2**31, 2**31), "header declares"),
        (struct.pack(">HBB", 0, 8, 3) + b"\0\0", "truncated inside its header"),
    ],
)
def test_corrupt_or_hostile_idx_files_give_a_clear_error(tmp_path, payload, message):
    path = _write_idx(tmp_path / "bad.gz", payload)
    with pytest.raises(UserError, match=message):
        read_idx(path)


def test_a_file_that_is_not_gzip_gives_a_clear_error(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(UserError, match="not a readable gzip IDX file"):
        read_idx(path)


def test_labels_out_of_range_are_refused(tmp_path):
    for name, (images, labels) in {
        "train": (np.zeros((2, 28, 28), np.uint8), np.array([0, 10], np.uint8)),
        "test": (np.zeros((2, 28, 28), np.uint8), np.array([0, 1], np.uint8)),
    }.items():
        img_file, lab_file = datasets.FILES[name]
        _write_idx(
            tmp_path / img_file, struct.pack(">HBBIII", 0, 8, 3, 2, 28, 28) + images.tobytes()
        )
        _write_idx(tmp_path / lab_file, struct.pack(">HBBI", 0, 8, 1, 2) + labels.tobytes())
    with pytest.raises(UserError, match=r"labels fall outside \[0, 10\)"):
        load_split("train", tmp_path)
