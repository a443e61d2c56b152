"""The network registry: ``--network_dataset NAME`` -> how to build, preprocess and train it.

Kept free of torch imports: a spec names its builder as ``"module:function"`` and
:func:`NetworkSpec.build` imports it on demand, so ``--help`` and error paths stay fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from weightshare.errors import UserError

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
class NetworkSpec:
    """A registry entry.

    Attributes:
        name: the ``--network_dataset`` key.
        builder: ``"module:callable"`` returning an untrained ``torch.nn.Module``.
        category: MLPerf category, ``heavy`` (target 99 % of FP32) or ``light`` (98 %).
        input_size: side of the square input; 28x28 images are zero-padded to it.
        recipe: how ``--mode train`` trains it.
        description: one line for ``--help`` and reports.
    """

    name: str
    builder: str
    category: str
    input_size: int
    recipe: TrainRecipe
    description: str

    def build(self):
        """A freshly initialised ``torch.nn.Module`` (imports torch)."""
        module_name, attr = self.builder.split(":")
        return getattr(importlib.import_module(module_name), attr)()


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
)
NETWORKS: dict[str, NetworkSpec] = {spec.name: spec for spec in _SPECS}
DEFAULT_NETWORK = "lenet5_fashionmnist"


def get_network(name: str) -> NetworkSpec:
    """The spec registered as ``name``; a UserError listing the known names otherwise."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise UserError(
            f"unknown --network_dataset {name!r}; known: {', '.join(NETWORKS)}"
        ) from None
