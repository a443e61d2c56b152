"""The network registry: ``--network_dataset NAME`` -> how to build, preprocess and train it.

Kept free of torch imports: a spec names its builder as ``"module:function"`` and
:func:`NetworkSpec.build` imports it on demand, so ``--help`` and error paths stay fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from weightshare.errors import UserError
from weightshare.networks.transforms import ImageTransform, imagenet_transform

CATEGORIES = ("heavy", "light")
MLPERF_RATIO = {"heavy": 0.99, "light": 0.98}


@dataclass(frozen=True)
class TrainRecipe:
    """SGD (Nesterov momentum 0.9) with a one-cycle schedule; documented in docs/networks.md.

    Attributes:
        epochs: passes over the 60k training images.
        batch_size: images per step.
        lr: peak learning rate of the one-cycle schedule (also the ``LR`` of ``EPOCH_LR.pt``).
        weight_decay: L2 penalty on every parameter.
        augment: random 2-pixel translations and horizontal flips.
        seed: seeds initialisation, shuffling and augmentation.
    """

    epochs: int
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    augment: bool = False
    seed: int = 0


@dataclass(frozen=True)
class WeightsFile:
    """A standard pretrained-weights file of a zoo network and the preprocessing it expects.

    Attributes:
        file: file name in the framework's cache (torch hub ``checkpoints/``, keras ``models/``).
        transform: resize / crop / normalisation the weights were trained with.
    """

    file: str
    transform: ImageTransform


@dataclass(frozen=True)
class NetworkSpec:
    """A registry entry.

    Attributes:
        name: the ``--network_dataset`` key.
        builder: ``"module:callable"`` returning an untrained model of ``framework``.
        category: MLPerf category, ``heavy`` (target 99 % of FP32) or ``light`` (98 %).
        input_size: side of the square input; 28x28 images are zero-padded to it.
        recipe: how ``--mode train`` trains it; None for the ImageNet zoo (not trained here).
        description: one line for ``--help`` and reports.
        framework: ``pytorch`` or ``tensorflow`` (Keras 3), the framework of ``builder``.
        dataset: ``fashionmnist``, or ``imagenet`` (validation images under ``--data-dir``).
        weights: pretrained files looked for, first found wins (zoo only).
    """

    name: str
    builder: str
    category: str
    input_size: int
    recipe: TrainRecipe | None
    description: str
    framework: str = "pytorch"
    dataset: str = "fashionmnist"
    weights: tuple[WeightsFile, ...] = ()

    def build(self):
        """A freshly initialised model (imports its framework)."""
        module_name, attr = self.builder.split(":")
        return getattr(importlib.import_module(module_name), attr)()


def find_weights_file(
    spec: NetworkSpec, explicit: str | Path | None, directories: list[Path], note: str = ""
) -> tuple[Path, WeightsFile]:
    """The pretrained-weights file of a zoo network and its :class:`WeightsFile` entry.

    Args:
        spec: a zoo ``NetworkSpec`` (``spec.weights`` non-empty).
        explicit: the ``--weights``/``--checkpoint`` path, or None to look in ``directories``.
        directories: the framework's weight caches, searched in order for each entry's file.
        note: said after the file name in the "no weights" message (e.g. the weights' origin).

    Raises:
        UserError: no file; the message says where to put one.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise UserError(f"--weights {path} does not exist")
        return path, spec.weights[0]
    for directory in directories:
        for entry in spec.weights:
            if (directory / entry.file).is_file():
                return directory / entry.file, entry
    raise UserError(
        f"no pretrained weights for {spec.name}: put {spec.weights[0].file}{note} in "
        f"{directories[0]}/ or pass --weights PATH (no download is attempted)"
    )


_SPECS = (
    NetworkSpec(
        "lenet300_fashionmnist",
        "weightshare.networks.lenet:LeNet300",
        "heavy",
        28,
        TrainRecipe(epochs=20, lr=0.05),
        "LeNet-300-100 (3 fully connected layers) on Fashion-MNIST",
    ),
    NetworkSpec(
        "lenet5_fashionmnist",
        "weightshare.networks.lenet:LeNet5",
        "heavy",
        28,
        TrainRecipe(epochs=20, lr=0.05),
        "LeNet-5 (2 convs, 3 fully connected layers) on Fashion-MNIST",
    ),
    NetworkSpec(
        "lenet5caffe_fashionmnist",
        "weightshare.networks.lenet:LeNet5Caffe",
        "heavy",
        28,
        TrainRecipe(epochs=20, lr=0.05),
        "Caffe's LeNet, Deep Compression's LeNet-5 (conv 20, conv 50, fc 500, fc 10; 431K "
        "weights) on Fashion-MNIST",
    ),
    NetworkSpec(
        "resnet20_fashionmnist",
        "weightshare.networks.resnet_cifar:resnet20",
        "heavy",
        32,
        TrainRecipe(epochs=10, lr=0.1, augment=True),
        "CIFAR-style ResNet-20 on Fashion-MNIST padded to 32x32",
    ),
    NetworkSpec(
        "mobilenetv2_fashionmnist",
        "weightshare.networks.mobilenetv2_small:MobileNetV2Small",
        "light",
        28,
        TrainRecipe(epochs=12, lr=0.1, weight_decay=4e-5, augment=True),
        "reduced MobileNetV2 (depthwise convs) on 28x28 Fashion-MNIST",
    ),
    NetworkSpec(
        "squeezenet_fashionmnist",
        "weightshare.networks.squeezenet:SqueezeNetSmall",
        "heavy",
        28,
        TrainRecipe(epochs=15, lr=0.05, augment=True),
        "small SqueezeNet (fire modules: squeeze 1x1, expand 1x1 + 3x3) on 28x28 Fashion-MNIST",
    ),
)
NETWORKS: dict[str, NetworkSpec] = {spec.name: spec for spec in _SPECS}
DEFAULT_NETWORK = "lenet5_fashionmnist"


def _tv(file: str, crop: int = 224, resize: int = 256, interpolation: str = "bilinear"):
    return WeightsFile(file, imagenet_transform(crop, resize, interpolation))


def _keras_tf_mode(file: str, interpolation: str = "bilinear") -> WeightsFile:
    """keras.applications "tf" preprocessing: x / 127.5 - 1, after resize 256 / crop 224."""
    return WeightsFile(
        file, ImageTransform(224, 256, interpolation, divisor=127.5, mean=(1.0,), std=(1.0,))
    )


def _keras_raw(file: str, interpolation: str = "bilinear") -> WeightsFile:
    """Models that normalise inside (MobileNetV3, EfficientNet): raw 0..255 pixels."""
    return WeightsFile(
        file, ImageTransform(224, 256, interpolation, divisor=1.0, mean=(0.0,), std=(1.0,))
    )


# torchvision files and their evaluation transforms (IMAGENET1K_V1 first, as the seed used).
_EFFICIENTNET_TV = (
    ("efficientnet_b0_rwightman-7f5810bc.pth", 224, 256),
    ("efficientnet_b1_rwightman-bac287d4.pth", 240, 256),
    ("efficientnet_b2_rwightman-c35c1473.pth", 288, 288),
    ("efficientnet_b3_rwightman-b3899882.pth", 300, 320),
    ("efficientnet_b4_rwightman-23ab8bcd.pth", 380, 384),
    ("efficientnet_b5_lukemelas-1a07897c.pth", 456, 456),
    ("efficientnet_b6_lukemelas-24a108a5.pth", 528, 528),
    ("efficientnet_b7_lukemelas-c5b4e57e.pth", 600, 600),
)


def _zoo_torch(name, arch, category, description, *weights: WeightsFile) -> NetworkSpec:
    return NetworkSpec(
        name,
        f"weightshare.networks.imagenet_torch:{arch}",
        category,
        weights[0].transform.size,
        None,
        description,
        framework="pytorch",
        dataset="imagenet",
        weights=weights,
    )


def _zoo_keras(name, arch, category, description, weights: WeightsFile) -> NetworkSpec:
    return NetworkSpec(
        name,
        f"weightshare.networks.imagenet_keras:{arch}",
        category,
        224,
        None,
        description,
        framework="tensorflow",
        dataset="imagenet",
        weights=(weights,),
    )


_ZOO_SPECS = (
    _zoo_torch(
        "mobilenetv2_imagenet_pytorch",
        "mobilenet_v2",
        "light",
        "torchvision MobileNetV2 on ImageNet",
        _tv("mobilenet_v2-b0353104.pth"),
        _tv("mobilenet_v2-7ebf99e0.pth", resize=232),
    ),
    _zoo_torch(
        "mobilenetv3_small_imagenet_pytorch",
        "mobilenet_v3_small",
        "light",
        "torchvision MobileNetV3-Small on ImageNet",
        _tv("mobilenet_v3_small-047dcff4.pth"),
    ),
    _zoo_torch(
        "mobilenetv3_large_imagenet_pytorch",
        "mobilenet_v3_large",
        "light",
        "torchvision MobileNetV3-Large on ImageNet",
        _tv("mobilenet_v3_large-8738ca79.pth"),
        _tv("mobilenet_v3_large-5c1a4163.pth", resize=232),
    ),
    _zoo_torch(
        "resnet50_imagenet_pytorch",
        "resnet50",
        "heavy",
        "torchvision ResNet-50 on ImageNet",
        _tv("resnet50-0676ba61.pth"),
        _tv("resnet50-11ad3fa6.pth", resize=232),
    ),
    _zoo_torch(
        "inceptionv1_imagenet_pytorch",
        "googlenet",
        "heavy",
        "torchvision GoogLeNet (Inception v1) on ImageNet, auxiliary heads dropped",
        _tv("googlenet-1378be20.pth"),
    ),
    _zoo_torch(
        "inceptionv3_imagenet_pytorch",
        "inception_v3",
        "heavy",
        "torchvision Inception v3 on ImageNet (299 px), auxiliary head dropped",
        _tv("inception_v3_google-0cc3c7bd.pth", 299, 342),
    ),
    *(
        _zoo_torch(
            f"efficientnetb{i}_imagenet_pytorch",
            f"efficientnet_b{i}",
            "light",
            f"torchvision EfficientNet-B{i} on ImageNet ({crop} px)",
            _tv(file, crop, resize, "bicubic"),
        )
        for i, (file, crop, resize) in enumerate(_EFFICIENTNET_TV)
    ),
    _zoo_keras(
        "mobilenetv1_imagenet",
        "mobilenet",
        "light",
        "keras.applications MobileNet on ImageNet",
        _keras_tf_mode("mobilenet_1_0_224_tf.h5"),
    ),
    _zoo_keras(
        "mobilenetv2_imagenet",
        "mobilenet_v2",
        "light",
        "keras.applications MobileNetV2 on ImageNet",
        _keras_tf_mode("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"),
    ),
    _zoo_keras(
        "mobilenetv3_small_imagenet",
        "mobilenet_v3_small",
        "light",
        "keras.applications MobileNetV3Small on ImageNet",
        _keras_raw("weights_mobilenet_v3_small_224_1.0_float.h5"),
    ),
    _zoo_keras(
        "mobilenetv3_large_imagenet",
        "mobilenet_v3_large",
        "light",
        "keras.applications MobileNetV3Large on ImageNet",
        _keras_raw("weights_mobilenet_v3_large_224_1.0_float.h5"),
    ),
    _zoo_keras(
        "efficientnetb0_imagenet",
        "efficientnet_b0",
        "light",
        "keras.applications EfficientNetB0 on ImageNet",
        _keras_raw("efficientnetb0.h5", "bicubic"),
    ),
    _zoo_keras(
        "resnet50v2_imagenet",
        "resnet50_v2",
        "heavy",
        "keras.applications ResNet50V2 on ImageNet",
        _keras_tf_mode("resnet50v2_weights_tf_dim_ordering_tf_kernels.h5"),
    ),
)
# The ImageNet zoo (pretrained weights from local files; not trained by --mode train).
ZOO: dict[str, NetworkSpec] = {spec.name: spec for spec in _ZOO_SPECS}


def get_network(name: str) -> NetworkSpec:
    """The spec registered as ``name`` (Fashion-MNIST networks or the ImageNet zoo); a
    UserError listing the known names otherwise."""
    try:
        return NETWORKS[name] if name in NETWORKS else ZOO[name]
    except KeyError:
        raise UserError(
            f"unknown --network_dataset {name!r}; known: {', '.join([*NETWORKS, *ZOO])}"
        ) from None
