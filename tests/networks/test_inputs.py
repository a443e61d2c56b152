"""Preprocessing and the dataset types behind --dataset (numpy side; torchvision as reference)."""

import numpy as np
import pytest
import torch
from PIL import Image

from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.datasets import Split
from weightshare.networks.imagefolder import list_image_folder, load_folder_split
from weightshare.networks.inputs import (
    ArraySplit,
    DatasetChoice,
    InputFeeder,
    head,
    load_dataset_split,
    load_npz,
    parse_dataset,
)
from weightshare.networks.tensors import images_to_tensor
from weightshare.networks.transforms import (
    ImageTransform,
    fashion_mnist_transform,
    fit_image,
    imagenet_transform,
)


def write_image_folder(root, classes=("a", "b", "c"), per_class=2, seed=0, sizes=None):
    """A tiny ImageFolder of random RGB images of varied sizes; returns ``root``."""
    rng = np.random.default_rng(seed)
    sizes = sizes or [(37, 53), (64, 48), (30, 30)]
    for ci, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = sizes[(ci + i) % len(sizes)]
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"img{i}.png")
    return root


@pytest.mark.parametrize("size", [28, 32])
def test_fashion_mnist_input_is_bit_identical_to_images_to_tensor(small_search, size):
    feeder = InputFeeder(fashion_mnist_transform(size), "NCHW")
    batches = list(feeder.batches(small_search, 300))
    assert [len(b) for b in batches] == [300, 300, 300, 100]
    ours = np.concatenate(batches)
    assert np.array_equal(ours, images_to_tensor(small_search.images, size).numpy())


def test_nhwc_layout_is_the_transpose():
    split = Split(
        "s", np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28) % 251, np.array([0, 1])
    )
    t = fashion_mnist_transform(32)
    nchw = next(InputFeeder(t, "NCHW").batches(split, 2))
    nhwc = next(InputFeeder(t, "NHWC").batches(split, 2))
    assert np.array_equal(nchw.transpose(0, 2, 3, 1), nhwc)


@pytest.mark.parametrize(
    ("size", "resize", "interpolation"),
    [(224, 256, "bilinear"), (299, 342, "bilinear"), (240, 256, "bicubic"), (64, 64, "bicubic")],
)
def test_imagenet_geometry_matches_torchvision(tmp_path, size, resize, interpolation):
    from torchvision import transforms as T

    mode = (
        T.InterpolationMode.BILINEAR
        if interpolation == "bilinear"
        else (T.InterpolationMode.BICUBIC)
    )
    reference = T.Compose(
        [
            T.Resize(resize, interpolation=mode),
            T.CenterCrop(size),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    ours = imagenet_transform(size, resize, interpolation)
    rng = np.random.default_rng(1)
    for shape in [(375, 500, 3), (500, 333, 3), (120, 90, 3)]:
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        expected = reference(image).numpy()
        pixels = fit_image(image, ours)[None]
        from weightshare.networks.transforms import normalise

        got = normalise(pixels, ours, "NCHW")[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_grayscale_images_feed_rgb_models_and_back():
    gray = Split("g", np.full((1, 28, 28), 200, np.uint8), np.array([0]))
    rgb = InputFeeder(imagenet_transform(32, 32), "NCHW").first(gray)
    assert rgb.shape == (1, 3, 32, 32)
    color = ArraySplit("c", np.full((1, 28, 28, 3), 200, np.uint8), np.array([0]))
    one = InputFeeder(fashion_mnist_transform(28), "NCHW").first(color)
    assert one.shape == (1, 1, 28, 28)


def test_image_folder_classes_are_sorted_folder_names_and_splits_are_seeded(tmp_path):
    write_image_folder(tmp_path / "data", classes=("zebra", "ant", "moth"), per_class=3)
    paths, labels, classes = list_image_folder(tmp_path / "data")
    assert classes == ("ant", "moth", "zebra") and len(paths) == 9
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    search = load_folder_split("search", tmp_path / "data")
    holdout = load_folder_split("holdout", tmp_path / "data")
    assert len(search) == 4 and len(holdout) == 5
    assert not set(search.paths) & set(holdout.paths)
    again = load_folder_split("search", tmp_path / "data")
    assert again.paths == search.paths
    scaled = load_folder_split("search", tmp_path / "data", 0.5)
    assert scaled.name == "search@0.5" and scaled.paths == search.paths[:2]
    # a root holding val/ is read from there (ImageNet layout)
    write_image_folder(tmp_path / "imagenet" / "val", per_class=1)
    assert len(list_image_folder(tmp_path / "imagenet")[0]) == 3


def test_image_folder_decodes_once_per_geometry(tmp_path):
    split = load_folder_split("search", write_image_folder(tmp_path / "d"))
    t = imagenet_transform(32, 36)
    first = split.pixels(t)
    assert first.shape == (len(split), 32, 32, 3) and first.dtype == np.uint8
    assert split.pixels(t) is first
    assert split.pixels(t.with_size(16)).shape[1] == 16


def test_image_folder_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list_image_folder(tmp_path / "missing")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(UserError, match="no images found"):
        list_image_folder(tmp_path / "empty")
    root = write_image_folder(tmp_path / "bad", per_class=1)
    (root / "a" / "img0.png").write_bytes(b"not a png")
    split = load_folder_split("search", root)
    with pytest.raises(UserError, match="cannot be decoded"):
        for name in ("search", "holdout"):
            load_folder_split(name, root).pixels(imagenet_transform(16, 16))
    assert len(split) >= 1


def test_npz_dataset_splits_and_checks(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    y = np.arange(10) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    choice = parse_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert choice == DatasetChoice("npz", tmp_path / "d.npz")
    search = load_dataset_split(choice, "search")
    holdout = load_dataset_split(choice, "holdout")
    assert len(search) == len(holdout) == 5
    assert isinstance(search, ArraySplit) and not search.prepared
    assert sorted(np.concatenate([search.labels, holdout.labels]).tolist()) == sorted(y.tolist())
    assert len(head(search, 2)) == 2
    np.savez(tmp_path / "bad.npz", images=x, y=y)
    with pytest.raises(UserError, match="must hold arrays 'x'"):
        load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad.npz", x=x, y=y[:3])
    with pytest.raises(UserError, match="'y' must be integer labels"):
        load_npz(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(UserError, match=r"not a readable \.npz"):
        load_npz(tmp_path / "junk.npz")


def test_prepared_float_npz_is_fed_as_is(tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 1, 8, 8)).astype(np.float32)
    split = ArraySplit("p", x, np.zeros(4, np.int64))
    assert split.prepared
    fed = np.concatenate(list(InputFeeder(imagenet_transform(), "NCHW").batches(split, 3)))
    assert np.array_equal(fed, x)


@pytest.mark.parametrize("value", ["mnist", "npz", "imagefolder:", "npz:"])
def test_bad_dataset_values_name_the_choices(value):
    with pytest.raises(UserError, match="--dataset must be one of"):
        parse_dataset(value)


def test_with_size_scales_the_resize():
    t = imagenet_transform(224, 256)
    assert t.with_size(112).resize == 128 and t.with_size(112).size == 112
    assert fashion_mnist_transform(28).with_size(32).resize is None
    with pytest.raises(ValueError):
        ImageTransform(8, interpolation="nearest")


def test_zoo_torch_entries_match_torchvision_weights_metadata():
    from torchvision.models import get_model_weights

    from weightshare.networks.registry import ZOO

    for spec in ZOO.values():
        if spec.framework != "pytorch":
            continue
        arch = spec.builder.split(":")[1]
        enum = {w.url.rsplit("/", 1)[1]: w for w in get_model_weights(arch)}
        for entry in spec.weights:
            kw = enum[entry.file].transforms.keywords
            t = entry.transform
            assert t.size == kw["crop_size"], spec.name
            assert t.resize == kw.get("resize_size", 256), spec.name
            interp = kw.get("interpolation")
            assert t.interpolation == (interp.value if interp is not None else "bilinear")
        assert spec.input_size == spec.weights[0].transform.size


def test_head_of_a_fashion_split_keeps_its_type(small_search):
    part = head(small_search, 3)
    assert isinstance(part, Split) and len(part) == 3
    assert torch.equal(
        images_to_tensor(part.images, 28), images_to_tensor(small_search.images[:3], 28)
    )
    assert get_network("lenet5_fashionmnist").dataset == "fashionmnist"
