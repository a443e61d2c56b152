"""keras.applications ImageNet networks of the seed's list, built untrained (``weights=None``)
and loaded from local ``.h5`` files.

Weights come from ``--weights PATH``, else from Keras' cache ``$KERAS_HOME/models/`` or
``~/.keras/models/`` under the file names keras.applications downloads
(``NetworkSpec.weights``); nothing is downloaded. Preprocessing: MobileNet v1/v2 and ResNet50V2
take ``x / 127.5 - 1``; MobileNetV3 and EfficientNetB0 normalise inside the model and take raw
0..255 pixels; all after a resize of the shorter side to 256 and a 224 centre crop.
"""

from __future__ import annotations

import os
from pathlib import Path

from weightshare.errors import UserError, first_line
from weightshare.networks.registry import find_weights_file


def _app(name: str, **kwargs):
    from weightshare.networks.keras_runtime import import_keras

    keras = import_keras()
    return getattr(keras.applications, name)(weights=None, classes=1000, **kwargs)


def mobilenet():
    """keras MobileNet (v1, alpha 1.0, 224), untrained."""
    return _app("MobileNet")


def mobilenet_v2():
    """keras MobileNetV2 (alpha 1.0, 224), untrained."""
    return _app("MobileNetV2")


def mobilenet_v3_small():
    """keras MobileNetV3Small (includes its own [-1, 1] rescaling), untrained."""
    return _app("MobileNetV3Small", include_preprocessing=True)


def mobilenet_v3_large():
    """keras MobileNetV3Large (includes its own [-1, 1] rescaling), untrained."""
    return _app("MobileNetV3Large", include_preprocessing=True)


def efficientnet_b0():
    """keras EfficientNetB0 (includes its own normalisation), untrained."""
    return _app("EfficientNetB0")


def resnet50_v2():
    """keras ResNet50V2, untrained."""
    return _app("ResNet50V2")


def cache_dirs() -> list[Path]:
    """Keras' weight caches: ``$KERAS_HOME/models`` (when set) and ``~/.keras/models``."""
    dirs = []
    if os.environ.get("KERAS_HOME"):
        dirs.append(Path(os.environ["KERAS_HOME"]) / "models")
    dirs.append(Path.home() / ".keras" / "models")
    return dirs


def find_weights(spec, explicit=None):
    """The ``.h5`` weights of a keras zoo network and its WeightsFile entry (see module doc)."""
    return find_weights_file(spec, explicit, cache_dirs())


def load_pretrained(spec, path: Path):
    """Build ``spec``'s network and load the ``.h5`` weights at ``path``."""

    model = spec.build()
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as exc:
        raise UserError(f"{path} does not fit {spec.name} ({first_line(exc)})") from None
    return model
