"""The backend contract: what the exploration needs from a framework, and nothing more.

A backend wraps one loaded model. Weights cross the boundary as numpy float32 arrays in the
canonical layout ``(out, in/groups, kh, kw)`` for convolutions and ``(out, in)`` for linear
layers (axis 0 is always the output channel), under framework-neutral canonical layer names.

A :class:`BackendPlugin` says how a backend is built and how it writes a model; each backend
module exports one as ``PLUGIN`` and :mod:`weightshare.backends.registry` finds it by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from weightshare.networks.datasets import Split
from weightshare.networks.registry import NetworkSpec
from weightshare.networks.transforms import ImageTransform
from weightshare.types import Accuracy, LayerInfo

# Images per gradient of the diagonal Fisher (``fisher()``, ``--clustering weighted``): the same
# mini-batches on every backend that has gradients, so their importances agree.
FISHER_BATCH = 16


class Backend(Protocol):
    """What every framework backend provides (see tests/backends for the conformance suite)."""

    name: str

    def layers(self) -> list[LayerInfo]:
        """The clusterable layers (conv incl. depthwise, linear) in model order."""
        ...

    def get_weights(self, name: str) -> np.ndarray:
        """A float32 copy of the pristine weight tensor of layer ``name`` (canonical layout)."""
        ...

    def current_weights(self, name: str) -> np.ndarray:
        """A float32 copy of the weights layer ``name`` holds now (after any set_weights)."""
        ...

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Overwrite the named layers' weights (canonical layout, shapes must match)."""
        ...

    def restore(self) -> None:
        """Put back the pristine weights, bit for bit."""
        ...

    def predict(self, split: Split) -> np.ndarray:
        """Logits of the current weights on ``split``: float32 (n_images, n_classes), one row
        per image in split order (deterministic)."""
        ...

    def evaluate(self, split: Split) -> Accuracy:
        """Top-1/top-5 accuracy of the current weights on ``split`` (deterministic); the same
        figures as :func:`~weightshare.backends.scoring.accuracy_from_logits` of
        :meth:`predict`."""
        ...

    def n_unclustered(self) -> int:
        """Scalars the model stores outside clusterable weights (biases, BatchNorm, ...)."""
        ...


class PrefixReuse(Protocol):
    """An optional backend capability (PyTorch has it): step 1 shares one layer at a time, and
    the layers before it compute the fp32 model's activations, so they need to run only once
    per split. The evaluator uses it when the backend has it and falls back to
    :meth:`Backend.predict` when it returns None."""

    def predict_after(self, split: Split, layer: str) -> np.ndarray | None:
        """:meth:`Backend.predict` when only ``layer``'s weights differ from the pristine
        ones, bit for bit, the activations before ``layer`` reused; None when the model
        cannot be run from ``layer`` on, or the activations to keep would pass the backend's
        memory bound."""
        ...


@dataclass(frozen=True)
class BackendPlugin:
    """One backend as the factory and ``--mode export`` see it (its module's ``PLUGIN``).

    Attributes:
        name: the ``--backend`` value (also ``Backend.name`` of what it builds).
        model_format: the ``--model`` file format it runs natively (``onnx``, ``keras``,
            ``torchscript``); every format belongs to one backend.
        sniff: ``(path, zip member names or None) -> bool``: the file is in ``model_format``.
            Must not import the framework (it runs for every ``--model``).
        takes: ``(spec) -> bool``: it can run the registry network ``spec``.
        from_file: ``(path, transform, threads) -> Backend`` for a ``--model`` file in
            ``model_format``, preprocessed by ``transform``.
        from_network: ``(spec, model, transform, threads, *, cache_dir, weights_path) ->
            Backend`` for a registry network loaded in its own framework (``model``: an
            ``nn.Module`` when ``spec.framework == "pytorch"``, a ``keras.Model`` otherwise);
            ``weights_path`` (the file its weights came from) keys caches under ``cache_dir``.
        write: ``(backend, out_dir, stem, notes) -> [paths]``: the backend's current weights
            as model files under ``out_dir`` (the native format, and ONNX when possible); a
            file it cannot write is a line appended to ``notes``.
    """

    name: str
    model_format: str
    sniff: Callable[[Path, tuple[str, ...] | None], bool]
    takes: Callable[[NetworkSpec], bool]
    from_file: Callable[[Path, ImageTransform, int], Backend]
    from_network: Callable[..., Backend]
    write: Callable[[Backend, Path, str, list[str]], list[Path]]
