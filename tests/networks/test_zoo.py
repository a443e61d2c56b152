"""The ImageNet zoo: every seed key builds (random weights) and evaluates on a tiny ImageFolder
this test writes; weights load from the standard cache locations; categories follow MLPerf."""

import numpy as np
import pytest
import torch

from tests.networks.test_inputs import write_image_folder
from weightshare.backends.factory import check_fit, network_backend
from weightshare.modes.loading import load_backend, load_splits
from weightshare.networks.imagefolder import load_folder_split
from weightshare.networks.imagenet_torch import drop_aux
from weightshare.networks.registry import MLPERF_RATIO, ZOO

SEED_TORCH = (
    "mobilenetv2_imagenet_pytorch",
    "mobilenetv3_small_imagenet_pytorch",
    "mobilenetv3_large_imagenet_pytorch",
    "resnet50_imagenet_pytorch",
    "inceptionv1_imagenet_pytorch",
    "inceptionv3_imagenet_pytorch",
    *(f"efficientnetb{i}_imagenet_pytorch" for i in range(8)),
)
SEED_KERAS = (
    "mobilenetv1_imagenet",
    "mobilenetv2_imagenet",
    "mobilenetv3_small_imagenet",
    "mobilenetv3_large_imagenet",
    "efficientnetb0_imagenet",
    "resnet50v2_imagenet",
)
# the tests below run every registry key of each framework (the seed lists above only pin
# which keys the zoo must hold)
ZOO_TORCH = [name for name, spec in ZOO.items() if spec.framework == "pytorch"]
ZOO_KERAS = [name for name, spec in ZOO.items() if spec.framework == "tensorflow"]


def top1_top5(logits, labels: np.ndarray) -> tuple[float, float]:
    """Top-1 / top-5 accuracy computed here from the logits (N, classes) a backend predicts."""
    ranked = np.argsort(-np.asarray(logits), axis=1, kind="stable")[:, :5]
    return float((ranked[:, 0] == labels).mean()), float((ranked == labels[:, None]).any(1).mean())


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    """Four classes x two images of assorted sizes, in the ImageNet ``val/`` layout."""
    root = tmp_path_factory.mktemp("imagenet")
    write_image_folder(
        root / "val",
        classes=("n01440764", "n01443537", "n01484850", "n01491361"),
        per_class=2,
        sizes=[(300, 400), (500, 375), (256, 256)],
    )
    return root


@pytest.fixture(scope="module")
def tiny_split(imagenet_dir):
    split = load_folder_split("search", imagenet_dir)
    assert len(split) == 4
    return split.head(2)


def test_the_zoo_holds_exactly_the_seed_keys_with_mlperf_categories():
    assert set(ZOO) == {*SEED_TORCH, *SEED_KERAS}
    for name, spec in ZOO.items():
        light = "mobilenet" in name or "efficientnet" in name
        assert spec.category == ("light" if light else "heavy"), name
        assert spec.dataset == "imagenet" and spec.recipe is None
        assert spec.framework == ("pytorch" if name.endswith("_pytorch") else "tensorflow")
    assert MLPERF_RATIO["light"] == 0.98


def _total_floats(model) -> int:
    return sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())


@pytest.mark.parametrize("name", ZOO_TORCH)
def test_torchvision_key_builds_and_evaluates(name, tiny_split):
    spec = ZOO[name]
    torch.manual_seed(0)
    model = drop_aux(spec.build().eval())
    transform = spec.weights[0].transform
    if transform.size > 299 or name.startswith(("efficientnetb", "resnet50", "inceptionv1")):
        transform = transform.with_size(96)  # keep the CPU test short; resolution is free
    backend = network_backend(spec, model, transform, "pytorch", 2)
    layers = backend.layers()
    assert layers and layers[-1].kind == "linear" and layers[-1].shape[0] == 1000
    assert sum(x.n_weights for x in layers) + backend.n_unclustered() == _total_floats(model)
    assert not any("aux" in x.name.lower() for x in layers)
    kinds = {x.kind for x in layers}
    assert ("depthwise_conv" in kinds) == (spec.category == "light")
    assert check_fit(backend, tiny_split) == 1000
    accuracy = backend.evaluate(tiny_split)
    assert accuracy.n_images == 2
    assert (accuracy.top1, accuracy.top5) == top1_top5(
        backend.predict(tiny_split), tiny_split.labels
    )


def test_inception_v3_aux_head_is_neither_clustered_nor_counted():
    spec = ZOO["inceptionv3_imagenet_pytorch"]
    model = spec.build()
    state = model.state_dict()
    aux = sum(
        t.numel() for n, t in state.items() if n.startswith("AuxLogits.") and t.is_floating_point()
    )
    total = _total_floats(model)
    assert aux > 3_000_000  # the head torchvision ships with the hub weights
    drop_aux(model)
    assert model.AuxLogits is None and not model.aux_logits
    backend = network_backend(spec, model, spec.weights[0].transform, "pytorch", 2)
    assert not any(x.name.startswith("AuxLogits") for x in backend.layers())
    counted = sum(x.n_weights for x in backend.layers()) + backend.n_unclustered()
    assert counted == _total_floats(model) == total - aux


@pytest.mark.parametrize("name", ZOO_KERAS)
def test_keras_key_builds_and_evaluates(name, tiny_split):
    from weightshare.backends.tf_keras import KerasBackend

    spec = ZOO[name]
    backend = KerasBackend(spec.build(), transform=spec.weights[0].transform, threads=2)
    layers = backend.layers()
    assert layers and layers[-1].shape[0] == 1000
    assert backend.transform.size == 224 and backend.layout == "NHWC"
    assert ("depthwise_conv" in {x.kind for x in layers}) == (spec.category == "light")
    assert check_fit(backend, tiny_split) == 1000
    accuracy = backend.evaluate(tiny_split)
    assert accuracy.n_images == 2
    assert (accuracy.top1, accuracy.top5) == top1_top5(
        backend.predict(tiny_split), tiny_split.labels
    )


def test_torch_zoo_weights_load_from_the_hub_cache_and_run_on_both_backends(
    tmp_path, monkeypatch, imagenet_dir
):
    """The real path: --network_dataset + --data-dir; weights in $TORCH_HOME/hub/checkpoints."""
    spec = ZOO["mobilenetv3_small_imagenet_pytorch"]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(1)
    reference = spec.build().eval()
    torch.save(reference.state_dict(), hub / spec.weights[0].file)
    search, holdout = load_splits(spec, imagenet_dir, 1.0)
    assert len(search) == 4 and len(holdout) == 4
    part = search.head(2)
    pt, path = load_backend(spec, None, tmp_path / "cache", imagenet_dir, 2)
    assert path == hub / spec.weights[0].file and pt.transform == spec.weights[0].transform
    ort, _ = load_backend(spec, None, tmp_path / "cache", imagenet_dir, 2, backend="onnxruntime")
    assert [x.name for x in ort.layers()] == [x.name for x in pt.layers()]
    np.testing.assert_allclose(ort.predict(part), pt.predict(part), atol=1e-3)
    # --weights wins over the cache
    other = tmp_path / "mine.pth"
    torch.save(spec.build().state_dict(), other)
    assert load_backend(spec, None, tmp_path / "cache", imagenet_dir, 2, weights=other)[1] == other


def test_keras_zoo_weights_load_from_the_keras_cache(tmp_path, monkeypatch, imagenet_dir):
    spec = ZOO["mobilenetv3_small_imagenet"]
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    source = spec.build()
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    with h5py.File(models / spec.weights[0].file, "w") as fh:  # the keras.applications format
        save_weights_to_hdf5_group(fh, source)
    backend, path = load_backend(spec, None, tmp_path / "cache", imagenet_dir, 2)
    assert path == models / spec.weights[0].file
    first = backend.layers()[0].name
    expected = source.get_layer(first).kernel.numpy()
    assert np.array_equal(backend.model.get_layer(first).kernel.numpy(), expected)
    with pytest.raises(Exception, match="runs on --backend tensorflow"):
        load_backend(spec, None, tmp_path / "cache", imagenet_dir, 2, backend="onnxruntime")
