"""Layer names of ONNX weights: the layer's own name whichever exporter wrote the graph."""

import pytest

from weightshare.backends.onnx_names import layer_names, scope_name


@pytest.mark.parametrize(
    ("node", "init", "name"),
    [
        # torch.onnx (dynamo): the initializer is the module path, the node generic
        ("node_conv2d", "conv1.weight", "conv1"),
        ("node_linear_2", "layer1.0.conv1.weight", "layer1.0.conv1"),
        # TorchScript exporter: the node carries the module path
        ("/features/features.0/Conv", "onnx::Conv_5", "features.0"),
        # tf2onnx (Keras / TensorFlow): the node's innermost layer scope
        ("sequential_1/dense_1/MatMul", "sequential_1/dense_1/Cast/ReadVariableOp:0", "dense_1"),
        ("sequential/conv2d/Conv2D", "const_fold_opt__12", "conv2d"),
        ("StatefulPartitionedCall/model/conv2d_3/Conv2D_1", "w:0", "conv2d_3"),
        ("model/dense/Tensordot/MatMul", "model/dense/Tensordot/ReadVariableOp:0", "dense"),
        # no node name: the initializer's scopes
        ("", "dense/kernel:0", "dense"),
        ("", "sequential_1/dense_1/Cast/ReadVariableOp:0", "dense_1"),
        # nothing names a layer (Keras 3 on torch): the initializer name stays
        ("/Conv", "onnx::Conv_37", "onnx::Conv_37"),
        ("", "W", "W"),
    ],
)
def test_one_weight(node, init, name):
    assert layer_names([(node, init)]) == [name]


def test_repeated_scopes_are_qualified_then_fall_back_to_initializers():
    weights = [
        ("a/dense/MatMul", "x1"),
        ("b/dense/MatMul", "x2"),
        ("node_conv2d", "conv.weight"),
        ("", "conv/kernel:0"),  # "conv" again; no outer scope qualifies either
    ]
    assert layer_names(weights) == ["a/dense", "b/dense", "conv.weight", "conv/kernel:0"]


def test_a_fallback_that_meets_another_name_gives_initializer_names_throughout():
    weights = [("x/dense/MatMul", "dense"), ("y/dense/MatMul", "i2"), ("", "x/dense")]
    # qualified names would be x/dense, y/dense, x/dense: not unique
    assert layer_names(weights) == ["dense", "i2", "x/dense"]


def test_scope_name():
    assert scope_name("sequential_1/dense_1/BiasAdd") == "dense_1"
    assert scope_name("node_Conv_0") is None
    assert scope_name("") is None
