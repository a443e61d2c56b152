"""The ONNX Runtime backend: conformance, canonical layouts, swaps that really swap, bad graphs."""

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")  # optional frameworks: skip, do not fail, without them
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper

from tests.backends.conformance import BackendConformance
from weightshare.backends.onnx_export import export_onnx
from weightshare.backends.ort import OnnxRuntimeBackend, find_layers
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.transforms import fashion_mnist_transform, imagenet_transform


def _torch_model(name: str, trained: bool):
    spec = get_network(name)
    torch.manual_seed(0)
    model = spec.build()
    if trained:
        load_into(model, BASELINE_DIR / f"{name}.pt")
    return spec, model.eval()


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    """ONNX exports of the LeNet-5 baseline and of four seeded registry networks."""
    out = {}
    for name, trained in (
        ("lenet5_fashionmnist", True),
        ("lenet5caffe_fashionmnist", False),
        ("resnet20_fashionmnist", False),
        ("mobilenetv2_fashionmnist", False),
        ("squeezenet_fashionmnist", False),
    ):
        spec, model = _torch_model(name, trained)
        path = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
        x = torch.zeros(1, 1, spec.input_size, spec.input_size)
        out[name] = (export_onnx(model, x, path), model, spec)
    return out


def _backend(onnx_files, name, **kwargs):
    path, _, spec = onnx_files[name]
    return OnnxRuntimeBackend(path, transform=fashion_mnist_transform(spec.input_size), **kwargs)


class TestLeNet5RebuildConformance(BackendConformance):
    @pytest.fixture
    def backend(self, onnx_files):
        return _backend(onnx_files, "lenet5_fashionmnist", swap="rebuild")

    @pytest.fixture
    def split(self, small_search):
        return small_search


class TestLeNet5InputsConformance(BackendConformance):
    @pytest.fixture
    def backend(self, onnx_files):
        return _backend(onnx_files, "lenet5_fashionmnist", swap="inputs")

    @pytest.fixture
    def split(self, small_search):
        return small_search


@pytest.fixture(scope="module")
def mobilenet_ort(onnx_files):
    return _backend(onnx_files, "mobilenetv2_fashionmnist")


class TestMobileNetV2Conformance(BackendConformance):
    @pytest.fixture
    def backend(self, mobilenet_ort):
        return mobilenet_ort

    @pytest.fixture
    def split(self, small_search):
        return small_search


@pytest.mark.parametrize(
    "name",
    [
        "lenet5_fashionmnist",
        "lenet5caffe_fashionmnist",
        "resnet20_fashionmnist",
        "mobilenetv2_fashionmnist",
        "squeezenet_fashionmnist",
    ],
)
def test_export_lists_the_pytorch_layers_and_predicts_the_same(onnx_files, small_search, name):
    _, model, spec = onnx_files[name]
    reference = PyTorchBackend(model, spec.input_size, threads=2)
    backend = _backend(onnx_files, name)
    assert [(x.name, x.shape, x.kind) for x in backend.layers()] == [
        (x.name, x.shape, x.kind) for x in reference.layers()
    ]
    assert backend.n_unclustered() == reference.n_unclustered()
    for layer in backend.layers():
        assert np.array_equal(backend.get_weights(layer.name), reference.get_weights(layer.name))
    np.testing.assert_allclose(
        backend.predict(small_search), reference.predict(small_search), atol=2e-4
    )


@pytest.mark.parametrize("swap", ["rebuild", "inputs"])
def test_every_single_layer_swap_reaches_the_outputs(onnx_files, small_search, swap):
    """Regression: with ORT_ENABLE_ALL, SessionOptions.add_initializer left LeNet-5's convs
    unchanged in ONNX Runtime 1.31; each layer swap must change the logits exactly like
    PyTorch."""
    _, model, spec = onnx_files["lenet5_fashionmnist"]
    reference = PyTorchBackend(model, spec.input_size, threads=2)
    backend = _backend(onnx_files, "lenet5_fashionmnist", swap=swap)
    part = type(small_search)("p", small_search.images[:200], small_search.labels[:200])
    for layer in backend.layers():
        value = np.round(backend.get_weights(layer.name) * 4) / 4  # a coarse, shared-like grid
        for b in (backend, reference):
            b.set_weights({layer.name: value})
        np.testing.assert_allclose(
            backend.predict(part), reference.predict(part), atol=2e-4, err_msg=layer.name
        )
        backend.restore()
        reference.restore()


def _graph_model(nodes, inits, inp, out, opset=17):
    graph = helper.make_graph(nodes, "g", [inp], [out], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def test_gemm_matmul_and_grouped_conv_layouts_are_canonical():
    rng = np.random.default_rng(0)
    conv_w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)  # groups=2: in 4 -> out 4
    dw_w = rng.normal(size=(8, 1, 3, 3)).astype(np.float32)  # depthwise, multiplier 2
    gemm_w = rng.normal(size=(8 * 4 * 4, 6)).astype(np.float32)  # transB=0: (in, out)
    mm_w = rng.normal(size=(6, 5)).astype(np.float32)  # MatMul: (in, out)
    inits = [
        numpy_helper.from_array(conv_w, "c.weight"),
        numpy_helper.from_array(dw_w, "dw"),
        numpy_helper.from_array(gemm_w, "g.weight"),
        numpy_helper.from_array(mm_w, "m"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c.weight"], ["a"], group=2, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["a", "dw"], ["b"], group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["b"], ["f"]),
        helper.make_node("Gemm", ["f", "g.weight"], ["h"], transB=0),
        helper.make_node("MatMul", ["h", "m"], ["y"]),
    ]
    model = _graph_model(
        nodes,
        inits,
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 4, 4]),
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5]),
    )
    assert [(c, k, t) for c, _, k, t in find_layers(model)] == [
        ("c", "conv", False),
        ("dw", "depthwise_conv", False),
        ("g", "linear", True),
        ("m", "linear", True),
    ]
    transform = imagenet_transform(4, 4)
    backend = OnnxRuntimeBackend(model, transform=transform, threads=1)
    shapes = {x.name: x.shape for x in backend.layers()}
    assert shapes == {"c": (4, 2, 3, 3), "dw": (8, 1, 3, 3), "g": (6, 128), "m": (5, 6)}
    assert np.array_equal(backend.get_weights("g"), gemm_w.T)
    assert np.array_equal(backend.get_weights("m"), mm_w.T)
    # a canonical (out, in) weight set through the backend acts as x @ W.T
    new = rng.normal(size=(5, 6)).astype(np.float32)
    backend.set_weights({"m": new})
    assert np.array_equal(backend.current_weights("m"), new)
    assert np.array_equal(
        numpy_helper.to_array(backend.current_model().graph.initializer[3]), new.T
    )
    backend.restore()
    assert backend.transform.channels == 3 and backend.layout == "NCHW"


def tf_style_names(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a torch.onnx export of a LeNet-style network named the way tf2onnx names a
    Keras model: weight ``conv1.weight`` -> ``sequential_1/conv1/Cast/ReadVariableOp:0``, bias
    ``-> .../BiasAdd/ReadVariableOp:0``, their node ``sequential_1/conv1/convolution`` (Conv)
    or ``sequential_1/fc1/MatMul`` (Gemm)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    renamed = {}
    for t in out.graph.initializer:
        layer, _, param = t.name.rpartition(".")
        if param in ("weight", "bias"):
            what = "Cast" if param == "weight" else "BiasAdd"
            renamed[t.name] = f"sequential_1/{layer}/{what}/ReadVariableOp:0"
            t.name = renamed[t.name]
    for node in out.graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        if node.op_type in ("Conv", "Gemm") and node.input[1] in renamed.values():
            layer = node.input[1].split("/")[1]
            op = "convolution" if node.op_type == "Conv" else "MatMul"
            node.name = f"sequential_1/{layer}/{op}"
    return out


def test_keras_style_onnx_names_are_the_layers_own(onnx_files, small_search):
    """Issue 15: ``sequential_1/dense_1/Cast/ReadVariableOp:0`` is listed as ``dense_1``."""
    path, model, spec = onnx_files["lenet5_fashionmnist"]
    tf_proto = tf_style_names(onnx.load(str(path)))
    transform = fashion_mnist_transform(spec.input_size)
    backend = OnnxRuntimeBackend(tf_proto, transform=transform, threads=1)
    names = ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert [x.name for x in backend.layers()] == names
    assert [x.name for x in PyTorchBackend(model, spec.input_size).layers()] == names
    assert [x.weight_name for x in backend.layers()] == [
        f"sequential_1/{n}/Cast/ReadVariableOp:0" for n in names
    ]
    original = OnnxRuntimeBackend(path, transform=transform, threads=1)
    assert [x.weight_name for x in original.layers()] == [f"{n}.weight" for n in names]
    # the same weights under the new names: same scores, same swaps, same exported graph
    assert np.array_equal(
        backend.evaluate(small_search).correct, original.evaluate(small_search).correct
    )
    new = np.zeros_like(backend.get_weights("fc3"))
    for b in (backend, original):
        b.set_weights({"fc3": new})
    assert np.array_equal(
        backend.evaluate(small_search).correct, original.evaluate(small_search).correct
    )
    exported = {t.name: t for t in backend.current_model().graph.initializer}
    weight = numpy_helper.to_array(exported["sequential_1/fc3/Cast/ReadVariableOp:0"])
    assert not weight.any() and weight.shape == original.get_weights("fc3").shape


def test_helper_graph_with_tensorflow_names():
    """A graph built with onnx.helper whose initializers and nodes carry tf2onnx names."""
    rng = np.random.default_rng(1)
    conv_w = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
    dense_w = rng.normal(size=(4 * 6 * 6, 3)).astype(np.float32)
    conv_init = "const_fold_opt__12"  # a folded (transposed) Keras kernel
    dense_init = "sequential_1/dense_1/Cast/ReadVariableOp:0"
    nodes = [
        helper.make_node("Conv", ["x", conv_init], ["a"], name="sequential_1/conv2d_1/Conv2D"),
        helper.make_node("Flatten", ["a"], ["f"], name="sequential_1/flatten_1/Reshape"),
        helper.make_node("MatMul", ["f", dense_init], ["y"], name="sequential_1/dense_1/MatMul"),
    ]
    inits = [
        numpy_helper.from_array(conv_w, conv_init),
        numpy_helper.from_array(dense_w, dense_init),
    ]
    model = _graph_model(
        nodes,
        inits,
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8]),
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
    )
    assert find_layers(model) == [
        ("conv2d_1", conv_init, "conv", False),
        ("dense_1", dense_init, "linear", True),
    ]
    backend = OnnxRuntimeBackend(model, transform=fashion_mnist_transform(8), threads=1)
    assert [(x.name, x.weight_name) for x in backend.layers()] == [
        ("conv2d_1", conv_init),
        ("dense_1", dense_init),
    ]
    assert np.array_equal(backend.get_weights("dense_1"), dense_w.T)
    with pytest.raises(UserError, match="unknown layer 'sequential_1/dense_1/Cast"):
        backend.get_weights(dense_init)


def test_a_graph_without_clusterable_layers_is_refused():
    bias = numpy_helper.from_array(np.ones(3, np.float32), "b")
    model = _graph_model(
        [helper.make_node("Add", ["x", "b"], ["y"])],
        [bias],
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
    )
    with pytest.raises(UserError, match="no clusterable layer"):
        OnnxRuntimeBackend(model, transform=imagenet_transform(), threads=1)


def test_unparsable_and_missing_files_are_one_line(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf \xff\xff")
    with pytest.raises(UserError, match=r"not a readable ONNX model|not an ONNX model"):
        OnnxRuntimeBackend(bad, transform=imagenet_transform())
    with pytest.raises(UserError, match="does not exist"):
        OnnxRuntimeBackend(tmp_path / "none.onnx", transform=imagenet_transform())


def test_threads_and_swap_are_validated_and_used(onnx_files):
    backend = _backend(onnx_files, "lenet5_fashionmnist", threads=1)
    assert backend._options().intra_op_num_threads == 1
    with pytest.raises(UserError, match="--threads must be an int >= 1"):
        _backend(onnx_files, "lenet5_fashionmnist", threads=0)
    with pytest.raises(UserError, match="swap must be one of"):
        _backend(onnx_files, "lenet5_fashionmnist", swap="hot")


def test_a_fixed_batch_graph_is_run_one_image_at_a_time(tmp_path, small_search):
    _, model = _torch_model("lenet5_fashionmnist", True)
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 28, 28),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
    )
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    backend = OnnxRuntimeBackend(path, transform=fashion_mnist_transform(), threads=1)
    assert backend.batch_size == 1
    part = type(small_search)("p", small_search.images[:20], small_search.labels[:20])
    reference = PyTorchBackend(model, 28, threads=1).evaluate(part)
    assert np.array_equal(backend.evaluate(part).correct, reference.correct)
