"""The six Fashion-MNIST registry networks rebuilt in Keras 3, weights copied from PyTorch.

:func:`to_keras` walks a trained PyTorch module of a known class and builds the same network as
a functional ``keras.Model`` (NHWC), each clusterable layer named by its PyTorch module name, so
the Keras backend lists the same canonical layers as the PyTorch one. The computation is the
same up to float rounding:

* PyTorch's symmetric padding is an explicit ``ZeroPadding2D`` before a ``valid`` convolution
  (Keras ``same`` pads asymmetrically at stride 2);
* LeNet-5 (both) permutes NHWC to NCHW before ``Flatten``, so ``fc1`` sees PyTorch's feature order;
* ResNet-20's parameter-free shortcut (subsample by 2, zero-pad channels) is an
  ``AveragePooling2D(1, 2)`` and a ``ZeroPadding3D`` over the channel axis;
* BatchNorm keeps PyTorch's epsilon (1e-5) and running statistics;
* SqueezeNet's fire modules concatenate on the last (channel) axis, in PyTorch's order (expand
  1x1 first), and the classifier conv is averaged over space as in PyTorch.
"""

from __future__ import annotations

import numpy as np


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


class _Builder:
    """Creates Keras layers from PyTorch modules and remembers the weights to copy."""

    def __init__(self, keras) -> None:
        self.k = keras
        self.assignments: list[tuple[object, list[np.ndarray]]] = []

    def conv(self, x, module, name: str):
        L = self.k.layers
        if any(module.padding):
            x = L.ZeroPadding2D(tuple(module.padding), name=f"{name}.pad")(x)
        depthwise = module.groups > 1 and module.groups == module.in_channels
        w = _np(module.weight)
        bias = module.bias is not None
        if depthwise:
            mult = module.out_channels // module.in_channels
            layer = L.DepthwiseConv2D(
                module.kernel_size,
                module.stride,
                "valid",
                depth_multiplier=mult,
                use_bias=bias,
                name=name,
            )
            kh, kw = w.shape[2:]
            kernel = w.reshape(module.in_channels, mult, kh, kw).transpose(2, 3, 0, 1)
        else:
            layer = L.Conv2D(
                module.out_channels,
                module.kernel_size,
                module.stride,
                "valid",
                groups=module.groups,
                use_bias=bias,
                name=name,
            )
            kernel = w.transpose(2, 3, 1, 0)
        out = layer(x)
        self.assignments.append((layer, [kernel] + ([_np(module.bias)] if bias else [])))
        return out

    def bn(self, x, module, name: str):
        layer = self.k.layers.BatchNormalization(epsilon=module.eps, name=name)
        out = layer(x)
        self.assignments.append(
            (
                layer,
                [
                    _np(module.weight),
                    _np(module.bias),
                    _np(module.running_mean),
                    _np(module.running_var),
                ],
            )
        )
        return out

    def dense(self, x, module, name: str):
        layer = self.k.layers.Dense(
            module.out_features, use_bias=module.bias is not None, name=name
        )
        out = layer(x)
        weights = [_np(module.weight).T] + ([_np(module.bias)] if module.bias is not None else [])
        self.assignments.append((layer, weights))
        return out

    def finish(self, inputs, outputs, name: str):
        model = self.k.Model(inputs, outputs, name=name)
        for layer, weights in self.assignments:
            layer.set_weights(weights)
        return model


def _lenet300(b: _Builder, m, x):
    L = b.k.layers
    x = L.Flatten(name="flatten")(x)  # one channel: HWC order == CHW order
    x = L.ReLU()(b.dense(x, m.fc1, "fc1"))
    x = L.ReLU()(b.dense(x, m.fc2, "fc2"))
    return b.dense(x, m.fc3, "fc3")


def _lenet5(b: _Builder, m, x):
    L = b.k.layers
    x = L.MaxPooling2D(2)(L.ReLU()(b.conv(x, m.conv1, "conv1")))
    x = L.MaxPooling2D(2)(L.ReLU()(b.conv(x, m.conv2, "conv2")))
    x = L.Flatten()(L.Permute((3, 1, 2), name="to_nchw")(x))
    x = L.ReLU()(b.dense(x, m.fc1, "fc1"))
    x = L.ReLU()(b.dense(x, m.fc2, "fc2"))
    return b.dense(x, m.fc3, "fc3")


def _lenet5caffe(b: _Builder, m, x):
    L = b.k.layers
    x = L.MaxPooling2D(2)(b.conv(x, m.conv1, "conv1"))  # Caffe's LeNet: no conv activation
    x = L.MaxPooling2D(2)(b.conv(x, m.conv2, "conv2"))
    x = L.Flatten()(L.Permute((3, 1, 2), name="to_nchw")(x))
    x = L.ReLU()(b.dense(x, m.fc1, "fc1"))
    return b.dense(x, m.fc2, "fc2")


def _resnet_cifar(b: _Builder, m, x):
    L = b.k.layers
    x = L.ReLU()(b.bn(b.conv(x, m.conv1, "conv1"), m.bn1, "bn1"))
    for stage in ("layer1", "layer2", "layer3"):
        for i, block in enumerate(getattr(m, stage)):
            p = f"{stage}.{i}"
            out = L.ReLU()(b.bn(b.conv(x, block.conv1, f"{p}.conv1"), block.bn1, f"{p}.bn1"))
            out = b.bn(b.conv(out, block.conv2, f"{p}.conv2"), block.bn2, f"{p}.bn2")
            shortcut = x
            if block.stride != 1 or block.pad:
                shortcut = L.AveragePooling2D(1, block.stride, name=f"{p}.subsample")(x)
                h, w, c = shortcut.shape[1:]
                shortcut = L.Reshape((h, w, c, 1))(shortcut)
                lo, hi = block.pad // 2, block.pad - block.pad // 2
                shortcut = L.ZeroPadding3D(((0, 0), (0, 0), (lo, hi)), name=f"{p}.padc")(shortcut)
                shortcut = L.Reshape((h, w, c + block.pad))(shortcut)
            x = L.ReLU()(L.Add()([out, shortcut]))
    x = L.GlobalAveragePooling2D()(x)
    return b.dense(x, m.fc, "fc")


def _mobilenetv2_small(b: _Builder, m, x):
    from torch import nn

    from weightshare.networks.mobilenetv2_small import InvertedResidual

    L = b.k.layers

    def conv_bn(x, seq, name):
        x = b.bn(b.conv(x, seq[0], f"{name}.0"), seq[1], f"{name}.1")
        if len(seq) > 2 and isinstance(seq[2], nn.ReLU6):
            x = L.ReLU(max_value=6.0)(x)
        return x

    for i, unit in enumerate(m.features):
        name = f"features.{i}"
        if isinstance(unit, InvertedResidual):
            out = x
            for j, seq in enumerate(unit.block):
                out = conv_bn(out, seq, f"{name}.block.{j}")
            x = L.Add()([x, out]) if unit.residual else out
        else:
            x = conv_bn(x, unit, name)
    x = L.GlobalAveragePooling2D()(x)
    return b.dense(x, m.classifier[1], "classifier.1")


def _squeezenet(b: _Builder, m, x):
    from weightshare.networks.squeezenet import POOL_BEFORE

    L = b.k.layers
    x = L.ReLU()(b.conv(x, m.conv1, "conv1"))
    for i, name in enumerate(m.fire_names):
        if i in POOL_BEFORE:
            x = L.MaxPooling2D(2)(x)
        fire = getattr(m, name)
        s = L.ReLU()(b.conv(x, fire.squeeze, f"{name}.squeeze"))
        e1 = L.ReLU()(b.conv(s, fire.expand1x1, f"{name}.expand1x1"))
        e3 = L.ReLU()(b.conv(s, fire.expand3x3, f"{name}.expand3x3"))
        x = L.Concatenate(axis=-1, name=f"{name}.concat")([e1, e3])  # NHWC: channels last
    x = b.conv(x, m.conv10, "conv10")
    return L.GlobalAveragePooling2D()(x)


def to_keras(module, input_size: int):
    """The Keras twin of a Fashion-MNIST registry network (weights copied).

    Args:
        module: a ``LeNet300``, ``LeNet5``, ``LeNet5Caffe``, ``ResNetCifar``,
            ``MobileNetV2Small`` or ``SqueezeNetSmall``.
        input_size: side of its square single-channel input.

    Returns:
        ``keras.Model`` taking float32 (N, S, S, 1) and returning logits (N, classes).
    """
    from weightshare.errors import UserError
    from weightshare.networks.keras_runtime import import_keras
    from weightshare.networks.lenet import LeNet5, LeNet5Caffe, LeNet300
    from weightshare.networks.mobilenetv2_small import MobileNetV2Small
    from weightshare.networks.resnet_cifar import ResNetCifar
    from weightshare.networks.squeezenet import SqueezeNetSmall

    keras = import_keras()
    builders = {
        LeNet300: _lenet300,
        LeNet5: _lenet5,
        LeNet5Caffe: _lenet5caffe,
        ResNetCifar: _resnet_cifar,
        MobileNetV2Small: _mobilenetv2_small,
        SqueezeNetSmall: _squeezenet,
    }
    build = builders.get(type(module))
    if build is None:
        raise UserError(
            f"no Keras version of {type(module).__name__}: the tensorflow backend takes the "
            "Fashion-MNIST registry networks, the keras.applications zoo or a .keras model"
        )
    b = _Builder(keras)
    inputs = keras.Input((input_size, input_size, 1), name="input")
    return b.finish(inputs, build(b, module.eval(), inputs), type(module).__name__.lower())
