"""TensorFlow/Keras 3 backend: a ``keras.Model`` whose kernels are assigned in place.

Clusterable layers: ``Conv1D/2D/3D`` (grouped included), ``DepthwiseConv2D`` and ``Dense``,
found recursively through nested models; canonical names are the layer names (``outer/inner``
inside a nested model). Canonical layout (axis 0 = output channel):

* Conv kernel ``(kh, kw, in/groups, out)`` -> ``(out, in/groups, kh, kw)``;
* DepthwiseConv2D kernel ``(kh, kw, in, mult)`` -> ``(in * mult, 1, kh, kw)`` (output channel
  ``i * mult + m``, PyTorch's order);
* Dense kernel ``(in, out)`` -> ``(out, in)``.

TensorFlow is imported only when this backend is built (~6 s). Its thread pools are fixed at
first use in a process: the first backend's ``threads`` wins.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from weightshare.backends.base import FISHER_BATCH, BackendPlugin
from weightshare.backends.scoring import accuracy_from_logits
from weightshare.errors import UserError, first_line
from weightshare.networks.inputs import InputFeeder, default_batch_size
from weightshare.networks.keras_runtime import import_keras
from weightshare.networks.transforms import ImageTransform
from weightshare.types import Accuracy, LayerInfo
from weightshare.validation import check_int


def _kind(layer, keras) -> str | None:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "depthwise_conv"
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        kernel = layer.kernel
        groups = getattr(layer, "groups", 1)
        depthwise = groups > 1 and kernel.shape[-2] == 1
        return "depthwise_conv" if depthwise else "conv"
    if isinstance(layer, keras.layers.Dense):
        return "linear"
    return None


def _walk(model, keras, prefix: str = ""):
    for layer in model.layers:
        name = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from _walk(layer, keras, f"{name}/")
        elif _kind(layer, keras) is not None:
            yield name, layer


def to_canonical(kind: str, kernel: np.ndarray) -> np.ndarray:
    """A Keras kernel in the canonical layout (see the module docstring); a new array."""
    if kind == "linear":
        return np.ascontiguousarray(kernel.T)
    if kind == "depthwise_conv" and kernel.ndim == 4 and kernel.shape[2] != 1:
        kh, kw, cin, mult = kernel.shape
        return np.ascontiguousarray(kernel.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw))
    spatial = tuple(range(kernel.ndim - 2))
    return np.ascontiguousarray(kernel.transpose(kernel.ndim - 1, kernel.ndim - 2, *spatial))


def from_canonical(kind: str, canonical: np.ndarray, kernel_shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`to_canonical` for a kernel of shape ``kernel_shape``."""
    if kind == "linear":
        return np.ascontiguousarray(canonical.T)
    if kind == "depthwise_conv" and len(kernel_shape) == 4 and kernel_shape[2] != 1:
        kh, kw, cin, mult = kernel_shape
        return np.ascontiguousarray(canonical.reshape(cin, mult, kh, kw).transpose(2, 3, 0, 1))
    n = canonical.ndim
    return np.ascontiguousarray(canonical.transpose(*range(2, n), 1, 0))


class KerasBackend:
    """Wraps a Keras 3 model (TensorFlow backend) for the exploration.

    Args:
        model: a built ``keras.Model``; owned by the backend from now on.
        transform: preprocessing of the model family (size/channels adapted to the model's
            static input shape).
        threads: TensorFlow intra-op threads (effective only before TF first runs).
        batch_size: images per forward pass (default: about 32 MiB of input).
    """

    name = "tensorflow"

    def __init__(
        self,
        model,
        *,
        transform: ImageTransform,
        threads: int = 2,
        batch_size: int | None = None,
    ) -> None:
        check_int("--threads", threads, 1)
        keras = import_keras(threads)
        import tensorflow as tf

        self.model = model
        self.threads = threads
        self._layers_by_name = dict(_walk(model, keras))
        if not self._layers_by_name:
            raise UserError(
                f"the Keras model {model.name!r} has no clusterable layer "
                "(Conv1D/2D/3D, DepthwiseConv2D or Dense)"
            )
        self._kinds = {n: _kind(layer, keras) for n, layer in self._layers_by_name.items()}
        self._pristine: dict[str, np.ndarray] = {}
        for name, layer in self._layers_by_name.items():
            kernel = np.array(layer.kernel.numpy(), dtype=np.float32, copy=True)
            kernel.setflags(write=False)
            self._pristine[name] = kernel
        self._layers = [
            LayerInfo(n, to_canonical(self._kinds[n], k).shape, self._kinds[n])
            for n, k in self._pristine.items()
        ]
        clustered = {id(layer.kernel) for layer in self._layers_by_name.values()}
        self._shapes = {layer.name: layer.shape for layer in self._layers}
        self._n_unclustered = sum(
            int(np.prod(v.shape))
            for v in model.weights
            if id(v) not in clustered and "float" in str(v.dtype)
        )
        self._dirty: set[str] = set()
        self.layout, self.transform = self._adapt(transform)
        self.feeder = InputFeeder(self.transform, self.layout)
        self.batch_size = batch_size or default_batch_size(self.transform)
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
        self._forward = tf.function(
            lambda x: self.model(x, training=False), input_signature=[spec], autograph=False
        )

    def _adapt(self, transform: ImageTransform) -> tuple[str, ImageTransform]:
        from dataclasses import replace

        shape = tuple(self.model.inputs[0].shape)
        layout = "NHWC"
        if len(shape) == 4:
            if shape[3] not in (1, 3) and shape[1] in (1, 3):
                layout = "NCHW"
            c, h = (shape[3], shape[1]) if layout == "NHWC" else (shape[1], shape[2])
            if h is not None and h != transform.size:
                transform = transform.with_size(int(h))
            if c in (1, 3) and c != transform.channels:
                mean = transform.mean if len(transform.mean) == c else (transform.mean[0],) * c
                std = transform.std if len(transform.std) == c else (transform.std[0],) * c
                transform = replace(transform, channels=c, mean=mean, std=std)
        return layout, transform

    def layers(self) -> list[LayerInfo]:
        return list(self._layers)

    def _layer(self, name: str):
        try:
            return self._layers_by_name[name]
        except KeyError:
            raise UserError(
                f"unknown layer {name!r}; clusterable layers: {', '.join(self._layers_by_name)}"
            ) from None

    def get_weights(self, name: str) -> np.ndarray:
        self._layer(name)
        return to_canonical(self._kinds[name], self._pristine[name])

    def current_weights(self, name: str) -> np.ndarray:
        kernel = np.asarray(self._layer(name).kernel.numpy(), dtype=np.float32)
        return to_canonical(self._kinds[name], kernel)

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        staged = []
        for name, value in weights.items():
            layer = self._layer(name)
            expected = self._shapes[name]
            array = np.asarray(value, dtype=np.float32)
            if array.shape != expected:
                raise ValueError(f"{name}: shape {array.shape} != {expected}")
            kernel = from_canonical(self._kinds[name], array, tuple(layer.kernel.shape))
            staged.append((name, layer, kernel))
        for name, layer, kernel in staged:
            layer.kernel.assign(kernel)
            self._dirty.add(name)

    def restore(self) -> None:
        for name in sorted(self._dirty):
            self._layers_by_name[name].kernel.assign(self._pristine[name])
        self._dirty.clear()

    def predict(self, split) -> np.ndarray:
        """Logits, float32 (N, classes), of the current weights on ``split``."""
        out = [np.asarray(self._forward(x)) for x in self.feeder.batches(split, self.batch_size)]
        logits = np.concatenate(out)
        return logits.reshape(logits.shape[0], -1)

    def fisher(self, split, batch_size: int = FISHER_BATCH) -> dict[str, np.ndarray]:
        """Diagonal empirical Fisher of every clusterable weight on ``split`` (GradientTape).

        The same figure as :meth:`PyTorchBackend.fisher`: the mean over mini-batches of
        ``batch_size`` images (split order) of the squared gradient of the batch's mean
        cross-entropy of the logits (``training=False``: BatchNorm uses its running
        statistics), with the kernels the layers hold now. Returns layer name -> float64 array
        of the weight's canonical shape, >= 0.
        """
        import tensorflow as tf

        names = list(self._layers_by_name)
        kernels = [self._layers_by_name[name].kernel for name in names]
        totals = [np.zeros(tuple(kernel.shape), np.float64) for kernel in kernels]
        labels = np.asarray(split.labels, np.int64)
        start = n_batches = 0
        for x in self.feeder.batches(split, batch_size):
            y = tf.constant(labels[start : start + x.shape[0]])
            start += x.shape[0]
            with tf.GradientTape() as tape:
                tape.watch([kernel.value for kernel in kernels])
                logits = tf.reshape(self.model(tf.constant(x), training=False), (x.shape[0], -1))
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                )
            grads = tape.gradient(loss, [kernel.value for kernel in kernels])
            for total, grad in zip(totals, grads, strict=True):
                total += np.square(np.asarray(grad, np.float64))
            n_batches += 1
        return {
            name: to_canonical(self._kinds[name], total / max(n_batches, 1))
            for name, total in zip(names, totals, strict=True)
        }

    def evaluate(self, split) -> Accuracy:
        start = time.perf_counter()
        logits = self.predict(split)
        seconds = time.perf_counter() - start
        return accuracy_from_logits(logits, np.asarray(split.labels, np.int64), seconds)

    def n_unclustered(self) -> int:
        return self._n_unclustered


# --- the plugin: user files, registry networks, writing ----------------------------------


def load_keras_model(path: Path):
    """A Keras model from ``.keras``/``.h5`` (``safe_mode=True``, not compiled)."""
    keras = import_keras()
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # keras raises ValueError, OSError, TypeError, h5py errors ...
        raise UserError(f"{path} is not a loadable Keras model ({first_line(exc)})") from None


def _is_keras(path: Path, members: tuple[str, ...] | None) -> bool:
    """A ``.keras``/``.h5`` file, or a Keras 3 archive under another name."""
    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return True
    return members is not None and "config.json" in members and "model.weights.h5" in members


def _from_file(path: Path, transform: ImageTransform, threads: int) -> KerasBackend:
    return KerasBackend(load_keras_model(path), transform=transform, threads=threads)


def _from_network(spec, model, transform: ImageTransform, threads: int, **_) -> KerasBackend:
    """A keras.applications network as is; a Fashion-MNIST PyTorch network as its Keras twin
    (:func:`weightshare.networks.keras_fashion.to_keras`, weights copied)."""
    if spec.framework == "pytorch":
        from weightshare.networks.keras_fashion import to_keras

        model = to_keras(model, spec.input_size)
    return KerasBackend(model, transform=transform, threads=threads)


def _write(backend: KerasBackend, out: Path, stem: str, notes: list[str]) -> list[Path]:
    """``<stem>.keras``; ``<stem>.onnx`` only with tf2onnx installed (else a note)."""
    from weightshare.outputs import atomic_path

    native = out / f"{stem}.keras"
    with atomic_path(native) as tmp:  # the temporary name keeps the .keras suffix Keras wants
        backend.model.save(str(tmp))
    files = [native]
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        notes.append("ONNX not written: converting a Keras model needs tf2onnx (not installed)")
        return files
    onnx_path = out / f"{stem}.onnx"
    with atomic_path(onnx_path) as tmp:
        backend.model.export(str(tmp), format="onnx")
    files.append(onnx_path)
    return files


PLUGIN = BackendPlugin(
    name="tensorflow",
    model_format="keras",
    sniff=_is_keras,
    takes=lambda spec: spec.framework == "tensorflow" or spec.dataset == "fashionmnist",
    from_file=_from_file,
    from_network=_from_network,
    write=_write,
)
