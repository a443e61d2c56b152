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
(:func:`default_transform`); registry networks by their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weightshare.errors import UserError, first_line
from weightshare.networks.inputs import DatasetChoice, head, image_shape, load_npz, parse_dataset
from weightshare.networks.transforms import (
    ImageTransform,
    fashion_mnist_transform,
    imagenet_transform,
)

BACKENDS = ("pytorch", "onnxruntime", "tensorflow")
_NATIVE = {"onnx": "onnxruntime", "keras": "tensorflow", "torchscript": "pytorch"}


def as_dataset(dataset) -> DatasetChoice | None:
    """A DatasetChoice from a ``--dataset`` string, a DatasetChoice or None."""
    return (
        dataset if isinstance(dataset, DatasetChoice) or dataset is None else parse_dataset(dataset)
    )


def check_backend(backend: str | None) -> str | None:
    """``backend`` if it is None or one of ``BACKENDS``; UserError otherwise."""
    if backend is not None and backend not in BACKENDS:
        raise UserError(f"--backend must be one of {BACKENDS}; got {backend!r}")
    return backend


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

    Returns:
        (backend, path of the weights or model file).
    """
    backend = check_backend(backend)
    choice = as_dataset(dataset)
    if model is not None:
        from weightshare.networks.user_models import model_format

        fmt = model_format(model)
        if fmt != "state_dict":
            return _user_model(fmt, Path(model), backend, choice, threads), Path(model)
        checkpoint = model
    if spec.dataset == "fashionmnist":  # --weights is a --checkpoint for these
        return _fashion(spec, checkpoint or weights, cache_dir, data_dir, threads, backend, choice)
    if spec.framework == "pytorch":
        from weightshare.networks import imagenet_torch

        path, entry = imagenet_torch.find_weights(spec, weights or checkpoint)
        module = imagenet_torch.load_pretrained(spec, path)
        return torch_module_backend(
            spec, module, entry.transform, backend, threads, cache_dir, path
        ), path
    from weightshare.networks import imagenet_keras

    if backend not in (None, "tensorflow"):
        _refuse(spec.name, backend, ("tensorflow",), "a keras.applications network")
    path, entry = imagenet_keras.find_weights(spec, weights or checkpoint)
    from weightshare.backends.tf_keras import KerasBackend

    keras_model = imagenet_keras.load_pretrained(spec, path)
    return KerasBackend(keras_model, transform=entry.transform, threads=threads), path


def torch_module_backend(spec, module, transform, backend, threads, cache_dir=None, path=None):
    """A PyTorch module (zoo or Fashion-MNIST) on ``pytorch`` or ``onnxruntime``.

    For ``onnxruntime`` the module is exported to ONNX: cached under ``cache_dir`` by the
    sha256 of ``path`` when both are given, else written to a temporary file.
    """
    if backend in (None, "pytorch"):
        from weightshare.backends.pytorch_fed import FedPyTorchBackend

        return FedPyTorchBackend(module, transform=transform, threads=threads)
    if backend == "onnxruntime":
        import torch

        from weightshare.backends.ort import OnnxRuntimeBackend
        from weightshare.networks.onnx_export import cached_onnx, export_onnx

        example = torch.zeros(1, transform.channels, transform.size, transform.size)
        if cache_dir is not None and path is not None:
            onnx_path = cached_onnx(module, example, Path(cache_dir), spec.name, Path(path))
            return OnnxRuntimeBackend(onnx_path, transform=transform, threads=threads)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(module, example, Path(tmp) / f"{spec.name}.onnx")
            return OnnxRuntimeBackend(onnx_path.read_bytes(), transform=transform, threads=threads)
    _refuse(spec.name, backend, ("pytorch", "onnxruntime"), "a PyTorch network")
    return None


def _fashion(spec, checkpoint, cache_dir, data_dir, threads, backend, choice):
    from weightshare.modes.loading import load_backend

    plain, path = load_backend(spec, checkpoint, cache_dir, data_dir, threads)
    transform = fashion_mnist_transform(spec.input_size)
    if backend == "tensorflow":
        from weightshare.backends.tf_keras import KerasBackend
        from weightshare.networks.keras_fashion import to_keras

        keras_model = to_keras(plain.model, spec.input_size)
        return KerasBackend(keras_model, transform=transform, threads=threads), path
    if backend in (None, "pytorch") and (choice is None or choice.kind == "fashionmnist"):
        return plain, path
    return torch_module_backend(
        spec, plain.model, transform, backend, threads, cache_dir, path
    ), path


def _user_model(fmt: str, path: Path, backend, choice, threads):
    native = _NATIVE[fmt]
    if backend not in (None, native):
        _refuse(f"--model {path} ({fmt})", backend, (native,))
    transform = default_transform(choice)
    if fmt == "onnx":
        from weightshare.backends.ort import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, transform=transform, threads=threads)
    if fmt == "keras":
        from weightshare.backends.tf_keras import KerasBackend
        from weightshare.networks.user_models import load_keras_model

        return KerasBackend(load_keras_model(path), transform=transform, threads=threads)
    from weightshare.backends.pytorch_fed import FedPyTorchBackend
    from weightshare.networks.user_models import load_torchscript

    return FedPyTorchBackend(load_torchscript(path), transform=transform, threads=threads)


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
