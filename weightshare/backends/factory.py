"""Choosing and building a backend: ``--backend``, ``--model``, ``--weights``, ``--dataset``.

========================  ==================  ================================================
model                     ``--backend``       what runs
========================  ==================  ================================================
Fashion-MNIST registry    pytorch (default)   the module itself
                          onnxruntime         its ONNX export, cached by checkpoint sha256
                          tensorflow          its Keras twin (networks/keras_fashion.py)
torchvision zoo           pytorch (default)   the module (weights from the torch hub cache)
                          onnxruntime         its ONNX export, cached by weights sha256
keras.applications zoo    tensorflow          the Keras model (weights from the Keras cache)
``--model X.onnx``        onnxruntime         the graph
``--model X.keras/.h5``   tensorflow          the Keras model
``--model X.pt`` (TS)     pytorch             the TorchScript module
``--model X.pt`` (dict)   any of the above    ``--network_dataset``'s architecture, these weights
========================  ==================  ================================================

User models are preprocessed by their ``--dataset``'s documented rule
(:func:`default_transform`); registry networks by their own. What each backend takes and how it
builds is its plugin's (:mod:`weightshare.backends.registry`): this module finds the file's
format or loads the registry network in its own framework, and hands it over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weightshare.backends.registry import (
    BACKEND_NAMES,
    STATE_DICT,
    check_backend,
    get_plugin,
    model_format,
    plugin_for_format,
)
from weightshare.errors import UserError, first_line
from weightshare.networks.inputs import DatasetChoice, head, image_shape, load_npz, parse_dataset
from weightshare.networks.transforms import (
    ImageTransform,
    fashion_mnist_transform,
    imagenet_transform,
)


def as_dataset(dataset) -> DatasetChoice | None:
    """A DatasetChoice from a ``--dataset`` string, a DatasetChoice or None."""
    return (
        dataset if isinstance(dataset, DatasetChoice) or dataset is None else parse_dataset(dataset)
    )


def is_plain(spec, backend, model, dataset, weights=None) -> bool:
    """True for the original path: a Fashion-MNIST registry network on PyTorch and its data."""
    choice = as_dataset(dataset)
    return (
        model is None
        and weights is None
        and check_backend(backend) in (None, "pytorch")
        and spec.dataset == "fashionmnist"
        and (choice is None or choice.kind == "fashionmnist")
    )


def default_transform(choice: DatasetChoice | None) -> ImageTransform:
    """The documented preprocessing of a user model for its ``--dataset``.

    * ``fashionmnist``: 28x28, zero-padded to the model's input side, Fashion-MNIST mean/std;
    * ``imagefolder``: RGB, shorter side resized to ``round(S / 0.875)`` (bilinear), centre crop
      ``S`` (224 unless the model fixes it), ImageNet mean/std;
    * ``npz`` uint8: no resampling (padded/cropped to the model's side), ``x / 255``.
    """
    if choice is None or choice.kind == "fashionmnist":
        return fashion_mnist_transform(28)
    if choice.kind in ("imagefolder", "imagenet"):
        return imagenet_transform(224)
    x, _ = load_npz(choice.path)
    channels = 1 if x.ndim == 3 else int(x.shape[-1])
    channels = channels if channels in (1, 3) else 1
    return ImageTransform(
        int(x.shape[1]), None, channels=channels, divisor=255.0, mean=(0.0,), std=(1.0,)
    )


def _refuse(what: str, backend: str, allowed: tuple[str, ...], why: str = "") -> None:
    raise UserError(
        f"{what} runs on --backend {' or '.join(allowed)}; got {backend!r}"
        + (f" ({why})" if why else "")
    )


def build_backend(
    spec,
    checkpoint,
    cache_dir,
    data_dir,
    threads: int,
    *,
    backend=None,
    model=None,
    weights=None,
    dataset=None,
):
    """The backend for a registry network or a user model (see the module table).

    A ``--model`` file in a backend's own format goes to that backend's ``from_file``; a
    registry network (or a state dict for its architecture) is loaded in its own framework and
    handed to the chosen backend's ``from_network``.

    Returns:
        (backend, path of the weights or model file).
    """
    backend = check_backend(backend)
    choice = as_dataset(dataset)
    if model is not None:
        fmt = model_format(model)
        if fmt != STATE_DICT:
            plugin = plugin_for_format(fmt)
            if backend not in (None, plugin.name):
                _refuse(f"--model {model} ({fmt})", backend, (plugin.name,))
            transform = default_transform(choice)
            return plugin.from_file(Path(model), transform, threads), Path(model)
        checkpoint = model
    _check_takes(spec, backend or spec.framework)  # before loading: a refusal costs nothing
    source, transform, path = _load_network(spec, checkpoint, weights, cache_dir, data_dir, threads)
    return network_backend(spec, source, transform, backend, threads, cache_dir, path), path


def network_backend(
    spec, model, transform: ImageTransform, backend, threads: int, cache_dir=None, path=None
):
    """Backend ``backend`` (None: the network's own framework) over ``model``, the registry
    network ``spec`` already loaded in its own framework; ``path``: its weights file (keys the
    ONNX export cache under ``cache_dir``)."""
    name = check_backend(backend) or spec.framework
    _check_takes(spec, name)
    return get_plugin(name).from_network(
        spec, model, transform, threads, cache_dir=cache_dir, weights_path=path
    )


def _check_takes(spec, name: str) -> None:
    if not get_plugin(name).takes(spec):
        allowed = tuple(n for n in BACKEND_NAMES if get_plugin(n).takes(spec))
        why = (
            "a keras.applications network"
            if spec.framework == "tensorflow"
            else "a PyTorch network"
        )
        _refuse(spec.name, name, allowed, why)


def _load_network(spec, checkpoint, weights, cache_dir, data_dir, threads):
    """``spec`` in its own framework: (model, its preprocessing, its weights file).

    Fashion-MNIST networks are trained first when no weights exist (``--weights`` is a
    ``--checkpoint`` for these); zoo networks read ``--weights`` or the framework's cache.
    """
    if spec.dataset == "fashionmnist":
        from weightshare.networks.checkpoints import load_into
        from weightshare.networks.training import trained_checkpoint

        path = trained_checkpoint(spec, checkpoint or weights, cache_dir, data_dir, threads)
        model = load_into(spec.build(), path).eval()
        return model, fashion_mnist_transform(spec.input_size), path
    if spec.framework == "pytorch":
        from weightshare.networks import imagenet_torch as zoo
    else:
        from weightshare.networks import imagenet_keras as zoo
    path, entry = zoo.find_weights(spec, weights or checkpoint)
    return zoo.load_pretrained(spec, path), entry.transform, path


def check_fit(backend, split) -> int:
    """Run two images of ``split`` through ``backend``; the number of classes it outputs.

    Raises:
        UserError: the images do not fit the model's input, or the labels exceed its classes.
    """
    probe = head(split, min(2, len(split)))
    try:
        logits = np.asarray(backend.predict(probe))
    except UserError:
        raise
    except Exception as exc:  # each framework has its own shape errors
        raise UserError(
            f"the {split.name} images (shape {image_shape(split)} each) do not fit the model "
            f"input ({first_line(exc)})"
        ) from None
    n_classes = int(logits.reshape(len(probe), -1).shape[1])
    top = int(np.max(split.labels)) if len(split) else 0
    if top >= n_classes:
        raise UserError(
            f"the dataset's labels go up to {top} but the model outputs {n_classes} classes"
        )
    return n_classes
