"""The Keras 3 backend: conformance, canonical layouts, the Fashion-MNIST twins."""

import numpy as np
import pytest
import torch

pytest.importorskip("tensorflow")  # an optional framework: skip, do not fail, without it

from tests.backends.conformance import BackendConformance
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.backends.tf_keras import (
    KerasBackend,
    from_canonical,
    to_canonical,
)
from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.datasets import load_calibration
from weightshare.networks.keras_fashion import to_keras
from weightshare.networks.keras_runtime import import_keras
from weightshare.networks.transforms import fashion_mnist_transform, imagenet_transform

keras = import_keras()  # through the package: it loads triton before TensorFlow (see there)

FASHION = (
    "lenet300_fashionmnist",
    "lenet5_fashionmnist",
    "lenet5caffe_fashionmnist",
    "resnet20_fashionmnist",
    "mobilenetv2_fashionmnist",
    "squeezenet_fashionmnist",
)


def _torch(name: str, trained: bool = False):
    spec = get_network(name)
    torch.manual_seed(0)
    model = spec.build().eval()
    if trained:
        load_into(model, BASELINE_DIR / f"{name}.pt")
    else:  # non-trivial BatchNorm statistics, so the twins are really compared
        g = torch.Generator().manual_seed(1)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.data.uniform_(0.5, 1.5, generator=g)
                m.bias.data.uniform_(-0.2, 0.2, generator=g)
    return spec, model


def _twin(name: str, trained: bool = False):
    spec, model = _torch(name, trained)
    keras_model = to_keras(model, spec.input_size)
    return (
        KerasBackend(keras_model, transform=fashion_mnist_transform(spec.input_size), threads=2),
        PyTorchBackend(model, spec.input_size, threads=2),
    )


@pytest.fixture(scope="module")
def lenet5_pair():
    return _twin("lenet5_fashionmnist", trained=True)


@pytest.fixture(scope="module")
def mobilenet_pair():
    return _twin("mobilenetv2_fashionmnist")


class TestLeNet5Conformance(BackendConformance):
    @pytest.fixture
    def backend(self, lenet5_pair):
        return lenet5_pair[0]

    @pytest.fixture
    def split(self, small_search):
        return small_search


class TestMobileNetV2Conformance(BackendConformance):
    @pytest.fixture
    def backend(self, mobilenet_pair):
        return mobilenet_pair[0]

    @pytest.fixture
    def split(self, small_search):
        return small_search


@pytest.mark.parametrize("name", FASHION)
def test_keras_twin_lists_the_pytorch_layers_and_predicts_the_same(name, small_search):
    backend, reference = _twin(name)
    assert [(x.name, x.shape, x.kind) for x in backend.layers()] == [
        (x.name, x.shape, x.kind) for x in reference.layers()
    ]
    assert backend.n_unclustered() == reference.n_unclustered()
    for layer in backend.layers():
        assert np.array_equal(backend.get_weights(layer.name), reference.get_weights(layer.name))
    part = type(small_search)("p", small_search.images[:200], small_search.labels[:200])
    ours, theirs = backend.predict(part), reference.predict(part)
    np.testing.assert_allclose(ours, theirs, atol=1e-4 * max(1.0, np.abs(theirs).max()))


def test_single_layer_swaps_act_like_pytorch(mobilenet_pair, small_search):
    backend, reference = mobilenet_pair
    part = type(small_search)("p", small_search.images[:100], small_search.labels[:100])
    for layer in backend.layers()[::5]:
        value = np.round(backend.get_weights(layer.name) * 8) / 8
        for b in (backend, reference):
            b.set_weights({layer.name: value})
        theirs = reference.predict(part)
        np.testing.assert_allclose(
            backend.predict(part),
            theirs,
            atol=1e-4 * max(1.0, np.abs(theirs).max()),
            err_msg=layer.name,
        )
        backend.restore()
        reference.restore()


@pytest.mark.parametrize("pair", ["lenet5_pair", "mobilenet_pair"])
def test_fisher_matches_pytorch_autograd_on_the_twin(pair, request):
    """--clustering weighted's importance from GradientTape equals PyTorch autograd's on the
    same network and calibration images (the same mini-batches of FISHER_BATCH images) up to
    float32 rounding: the two frameworks run other kernels (oneDNN vs ATen) and sum in other
    orders. Measured: at most 2e-6 of the layer's largest importance, and 2e-5 relative on
    weights above a thousandth of it (trained LeNet-5; MobileNetV2 with depthwise convs and
    BatchNorm in inference mode). The tolerance is 50 times that; a wrong layout, batch or
    loss is off by orders of magnitude more."""
    keras_backend, torch_backend = request.getfixturevalue(pair)
    calibration = load_calibration(32)
    ours, theirs = keras_backend.fisher(calibration), torch_backend.fisher(calibration)
    assert list(ours) == list(theirs)
    for name, expected in theirs.items():
        assert ours[name].dtype == np.float64 and ours[name].shape == expected.shape, name
        assert expected.max() > 0, name
        np.testing.assert_allclose(
            ours[name], expected, rtol=1e-3, atol=1e-4 * expected.max(), err_msg=name
        )


def test_depthwise_multiplier_and_grouped_conv_layouts_match_pytorch():
    rng = np.random.default_rng(0)
    inp = keras.Input((6, 6, 4))
    dw = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, name="dw")(inp)
    grouped = keras.layers.Conv2D(4, 3, groups=2, use_bias=False, name="grouped")(dw)
    flat = keras.layers.Flatten()(keras.layers.Permute((3, 1, 2))(grouped))
    out = keras.layers.Dense(3, use_bias=False, name="fc")(flat)
    model = keras.Model(inp, out)
    backend = KerasBackend(model, transform=imagenet_transform(6, 6), threads=2)
    assert [(x.name, x.shape, x.kind) for x in backend.layers()] == [
        ("dw", (8, 1, 3, 3), "depthwise_conv"),
        ("grouped", (4, 4, 3, 3), "conv"),
        ("fc", (3, 16), "linear"),
    ]
    # the same canonical weights in PyTorch compute the same function
    weights = {x.name: rng.normal(size=x.shape).astype(np.float32) for x in backend.layers()}
    backend.set_weights(weights)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 3, groups=4, bias=False),
        torch.nn.Conv2d(8, 4, 3, groups=2, bias=False),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 3, bias=False),
    )
    with torch.no_grad():
        for module, name in zip((net[0], net[1], net[3]), ("dw", "grouped", "fc"), strict=True):
            module.weight.copy_(torch.from_numpy(weights[name]))
    x = rng.normal(size=(2, 4, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    got = np.asarray(model(x.transpose(0, 2, 3, 1), training=False))
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        ("conv", (3, 3, 4, 8)),
        ("depthwise_conv", (3, 3, 4, 2)),
        ("linear", (10, 5)),
        ("conv", (5, 2, 7)),
    ],
)
def test_layout_conversions_invert(kind, shape):
    kernel = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    canonical = to_canonical(kind, kernel)
    assert np.array_equal(from_canonical(kind, canonical, shape), kernel)


def test_a_model_without_clusterable_layers_is_refused():
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.ReLU()(inp))
    with pytest.raises(UserError, match="no clusterable layer"):
        KerasBackend(model, transform=imagenet_transform(), threads=2)


def test_nested_models_get_path_names():
    inner_in = keras.Input((8,))
    inner = keras.Model(inner_in, keras.layers.Dense(4, name="d")(inner_in), name="inner")
    inp = keras.Input((8,))
    model = keras.Model(inp, keras.layers.Dense(2, name="head")(inner(inp)))
    backend = KerasBackend(model, transform=imagenet_transform(), threads=2)
    assert [x.name for x in backend.layers()] == ["inner/d", "head"]


def test_import_keras_is_idempotent():
    assert import_keras(2) is import_keras(1)
