"""torchvision ImageNet networks of the seed's list, built untrained, loaded from local files.

Weights are never downloaded: they come from ``--weights PATH`` (or ``--checkpoint``), else from
the standard torch hub cache ``$TORCH_HOME/hub/checkpoints/`` (``torch.hub.get_dir()``) under
the file names torchvision uses (``NetworkSpec.weights``; the first one found wins and brings its
own resize/crop). Files are read with ``torch.load(weights_only=True)``.

GoogLeNet and Inception v3 are built with their auxiliary heads so that the hub files load
strictly, then the heads are removed (``aux_logits=False``, as torchvision does for inference):
they are neither clustered nor counted. Both take ``transform_input=True`` like the hub weights.
"""

from __future__ import annotations

from pathlib import Path

from weightshare.networks.registry import find_weights_file


def _tv(arch: str, **kwargs):
    import torchvision

    return getattr(torchvision.models, arch)(weights=None, **kwargs)


def mobilenet_v2():
    """torchvision MobileNetV2 (untrained), input (N, 3, 224, 224)."""
    return _tv("mobilenet_v2")


def mobilenet_v3_small():
    """torchvision MobileNetV3-Small (untrained), input (N, 3, 224, 224)."""
    return _tv("mobilenet_v3_small")


def mobilenet_v3_large():
    """torchvision MobileNetV3-Large (untrained), input (N, 3, 224, 224)."""
    return _tv("mobilenet_v3_large")


def resnet50():
    """torchvision ResNet-50 (untrained), input (N, 3, 224, 224)."""
    return _tv("resnet50")


def googlenet():
    """torchvision GoogLeNet with its auxiliary heads (dropped by :func:`drop_aux`)."""
    return _tv("googlenet", aux_logits=True, transform_input=True, init_weights=True)


def inception_v3():
    """torchvision Inception v3 with its auxiliary head (dropped by :func:`drop_aux`),
    input (N, 3, 299, 299)."""
    return _tv("inception_v3", aux_logits=True, transform_input=True, init_weights=True)


def _efficientnet(i: int):
    def build():
        return _tv(f"efficientnet_b{i}")

    build.__name__ = f"efficientnet_b{i}"
    build.__doc__ = f"torchvision EfficientNet-B{i} (untrained)."
    return build


efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3 = (
    _efficientnet(i) for i in range(4)
)
efficientnet_b4, efficientnet_b5, efficientnet_b6, efficientnet_b7 = (
    _efficientnet(i) for i in range(4, 8)
)


def drop_aux(model):
    """Remove GoogLeNet's / Inception v3's auxiliary classifiers (inference never uses them)."""
    if hasattr(model, "aux_logits"):
        model.aux_logits = False
        for name in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, name):
                setattr(model, name, None)
    return model


def hub_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(spec, explicit=None):
    """The weights file of a torchvision zoo network and its WeightsFile entry.

    Args:
        spec: a zoo ``NetworkSpec`` with ``framework == "pytorch"``.
        explicit: ``--weights``/``--checkpoint`` path, or None to look in the hub cache.

    Raises:
        UserError: no file; the message says where to put one.
    """
    return find_weights_file(spec, explicit, [hub_dir()], " (torchvision IMAGENET1K_V1)")


def load_pretrained(spec, path: Path):
    """Build ``spec``'s network, load ``path`` strictly (weights_only), drop auxiliary heads."""
    from weightshare.networks.checkpoints import load_into

    return drop_aux(load_into(spec.build(), path)).eval()
