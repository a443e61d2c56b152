"""ONNX Runtime backend: an ``.onnx`` graph whose clusterable weight initializers are swapped.

Clusterable layers are float32 initializers used as the weight of ``Conv`` (grouped and
depthwise included), ``Gemm`` or ``MatMul`` (a constant right-hand side). Canonical layout
(axis 0 = output channel): Conv weights are already ``(out, in/groups, kh, kw)``; a Gemm weight
is ``(out, in)`` with ``transB=1`` and transposed from ``(in, out)`` otherwise; a MatMul weight
``(in, out)`` is transposed. Canonical names come from :mod:`.onnx_names`: a PyTorch export's
``conv1.weight`` is ``conv1`` (the PyTorch backend's name), a Keras/TensorFlow export's
``sequential_1/dense_1/Cast/ReadVariableOp:0`` consumed by node ``sequential_1/dense_1/MatMul``
is ``dense_1``; :meth:`OnnxRuntimeBackend.initializer_names` maps them back.

Two ways to swap weights (``swap=``), measured on 2 busy cores (bench/bench_backends.py and
docs/backends.md have the figures):

* ``"inputs"`` (default): the clusterable initializers are made overridable graph inputs once
  (one session, built at construction); a candidate's weights are fed with every run, so a swap
  is a dictionary update (~0.1 ms) and :meth:`restore` empties it. The runs lose ORT's
  constant-weight rewrites (Conv+BatchNorm fusion, NCHWc weight reordering), which measured no
  slower: LeNet-5 0.195 s vs 0.219 s for 5,000 images, ResNet-20 2.06 s vs 2.03 s for 1,000,
  torchvision ResNet-50 2.53 s vs 2.79 s for 16 images.
* ``"rebuild"``: a candidate's weights are written into the graph's initializers (raw bytes,
  in place) and a new session is built from the serialised graph at the next :meth:`evaluate`;
  :meth:`restore` goes back to the pristine session. A swap costs one serialisation plus one
  session creation: 3 ms for LeNet-5, 42 ms for ResNet-20, 0.14 s for MobileNetV2 (ImageNet),
  0.57 s for ResNet-50. (Not ``SessionOptions.add_initializer``: with ``ORT_ENABLE_ALL``,
  ONNX Runtime 1.31 silently keeps the original weights of some convolutions, e.g. LeNet-5's,
  when they are overridden that way; a test pins this.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from weightshare.backends.base import BackendPlugin
from weightshare.backends.onnx_names import layer_names
from weightshare.backends.scoring import accuracy_from_logits
from weightshare.errors import UserError, first_line
from weightshare.networks.inputs import InputFeeder, default_batch_size
from weightshare.networks.transforms import ImageTransform
from weightshare.types import Accuracy, LayerInfo
from weightshare.validation import check_int

SWAPS = ("inputs", "rebuild")
_FLOAT = 1  # onnx.TensorProto.FLOAT
_FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_METADATA_OPS = ("Shape", "Size")


def _import_ort():
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise UserError(
            f"the onnxruntime backend needs the packages onnx and onnxruntime ({exc}); "
            "install them with 'pip install onnx onnxruntime'"
        ) from None
    return onnx, onnxruntime


def load_onnx(source):
    """An ``onnx.ModelProto`` from a path, bytes or a ModelProto; UserError when unparsable."""
    onnx, _ = _import_ort()
    from google.protobuf.message import DecodeError

    if isinstance(source, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(source)
        return copy
    try:
        if isinstance(source, (bytes, bytearray)):
            return onnx.load_from_string(bytes(source))
        path = Path(source)
        if not path.is_file():
            raise UserError(f"ONNX model {path} does not exist")
        model = onnx.load(str(path))
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise UserError(f"{source} is not a readable ONNX model ({first_line(exc)})") from None
    if not model.graph.node:
        raise UserError(f"{source} is not an ONNX model (no graph nodes)")
    return model


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return a.i
    return default


def find_layers(model) -> list[tuple[str, str, str, bool]]:
    """The clusterable initializers of an ONNX graph, in node order.

    Returns:
        ``(canonical name, initializer name, kind, transposed)`` per layer; ``transposed``
        means the stored tensor is ``(in, out)`` and the canonical one its transpose.
    """
    inits = {t.name: t for t in model.graph.initializer}
    roles: dict[str, set[tuple[str, bool]]] = {}
    order: list[str] = []
    node_names: dict[str, str] = {}  # initializer -> its first consuming node's name
    other_use: set[str] = set()
    for node in model.graph.node:
        role = None
        if node.op_type == "Conv" and len(node.input) > 1:
            w = inits.get(node.input[1])
            if w is not None and len(w.dims) >= 3:
                depthwise = _attr(node, "group", 1) > 1 and w.dims[1] == 1
                role = (node.input[1], "depthwise_conv" if depthwise else "conv", False)
        elif node.op_type == "Gemm" and len(node.input) > 1:
            w = inits.get(node.input[1])
            if w is not None and len(w.dims) == 2:
                role = (node.input[1], "linear", not _attr(node, "transB", 0))
        elif node.op_type == "MatMul" and node.input[0] not in inits:
            w = inits.get(node.input[1])
            if w is not None and len(w.dims) == 2:
                role = (node.input[1], "linear", True)
        for i, name in enumerate(node.input):
            if (role is not None and i == 1) or node.op_type in _METADATA_OPS:
                continue  # reading a weight's shape does not depend on its values
            other_use.add(name)
        if role is not None:
            name, kind, transposed = role
            if inits[name].data_type != _FLOAT:
                continue
            if name not in roles:
                order.append(name)
                node_names[name] = node.name
            roles.setdefault(name, set()).add((kind, transposed))
    # shared with another use or layout: not safe to cluster
    kept = [i for i in order if len(roles[i]) == 1 and i not in other_use]
    names = layer_names([(node_names[i], i) for i in kept])
    return [(name, i, *next(iter(roles[i]))) for name, i in zip(names, kept, strict=True)]


def _count_float_constants(model, exclude: set[str]) -> int:
    """Float scalars stored in initializers and Constant nodes, less ``exclude`` and 0-d
    constants (pad values, clip bounds: operator settings, not parameters)."""
    from onnx import numpy_helper

    total = sum(
        int(np.prod(t.dims))
        for t in model.graph.initializer
        if t.data_type in _FLOAT_TYPES and t.name not in exclude and len(t.dims)
    )
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type in _FLOAT_TYPES and len(a.t.dims):
                    total += int(numpy_helper.to_array(a.t).size)
    return total


class OnnxRuntimeBackend:
    """Wraps an ONNX model for the exploration.

    Args:
        model: path of an ``.onnx`` file, its bytes, or an ``onnx.ModelProto``.
        transform: preprocessing of the model family; its size and channel count are adapted
            to a static input shape of the graph.
        threads: ``intra_op_num_threads`` of every session (inter-op 1, sequential).
        batch_size: images per run (default: about 32 MiB of input; a graph with a fixed
            batch dimension uses that).
        swap: ``inputs`` or ``rebuild`` (see the module docstring).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model,
        *,
        transform: ImageTransform,
        threads: int = 2,
        batch_size: int | None = None,
        swap: str = "inputs",
    ) -> None:
        check_int("--threads", threads, 1)
        if swap not in SWAPS:
            raise UserError(f"swap must be one of {SWAPS}; got {swap!r}")
        _, ort = _import_ort()
        from onnx import numpy_helper

        self._ort = ort
        self.source = model if isinstance(model, (str, os.PathLike)) else "<onnx model>"
        self.proto = load_onnx(model)
        self.threads, self.swap = threads, swap
        found = find_layers(self.proto)
        if not found:
            raise UserError(
                f"{self.source}: the ONNX graph has no clusterable layer (Conv, Gemm or MatMul "
                "with a constant float32 weight initializer)"
            )
        inits = {t.name: t for t in self.proto.graph.initializer}
        self._init_name = {c: i for c, i, _, _ in found}
        self._transposed = {c: t for c, _, _, t in found}
        self._pristine: dict[str, np.ndarray] = {}
        for canonical, init_name, _, _ in found:
            array = numpy_helper.to_array(inits[init_name]).astype(np.float32, copy=True)
            array.setflags(write=False)
            self._pristine[canonical] = array
        for canonical, init_name, _, _ in found:  # clusterable weights as raw little-endian f32
            tensor = inits[init_name]
            raw = np.ascontiguousarray(self._pristine[canonical], "<f4").tobytes()
            del tensor.float_data[:]
            tensor.raw_data = raw
        self._pristine_raw = {c: inits[i].raw_data for c, i, _, _ in found}
        self._layers = [
            LayerInfo(c, self._canonical(c, self._pristine[c]).shape, kind, weight_name=i)
            for c, i, kind, _ in found
        ]
        self._n_unclustered = _count_float_constants(self.proto, {i for _, i, _, _ in found})
        self._current: dict[str, np.ndarray] = {}  # canonical name -> stored-layout array
        self._input, self._output, shape = self._io()
        self.layout, transform = self._adapt(shape, transform)
        self.transform = transform
        self.feeder = InputFeeder(transform, self.layout)
        fixed_batch = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
        self.batch_size = fixed_batch or batch_size or default_batch_size(transform)
        self._bytes = self.proto.SerializeToString()
        self._pristine_session = self._session({})
        self._session_now = self._pristine_session
        self._dirty = False

    # --- model inspection ------------------------------------------------------------------

    def _io(self):
        init_names = {t.name for t in self.proto.graph.initializer}
        inputs = [i for i in self.proto.graph.input if i.name not in init_names]
        if len(inputs) != 1:
            raise UserError(
                f"{self.source}: the ONNX graph must take exactly one image input; "
                f"it takes {[i.name for i in inputs]}"
            )
        dims = inputs[0].type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        return inputs[0].name, self.proto.graph.output[0].name, shape

    @staticmethod
    def _adapt(shape, transform: ImageTransform) -> tuple[str, ImageTransform]:
        from dataclasses import replace

        layout = "NCHW"
        if len(shape) == 4:
            if shape[1] not in (1, 3) and shape[3] in (1, 3):
                layout = "NHWC"
            c, h = (shape[1], shape[2]) if layout == "NCHW" else (shape[3], shape[1])
            if isinstance(h, int) and h > 0 and h != transform.size:
                transform = transform.with_size(h)
            if c in (1, 3) and c != transform.channels:
                mean = transform.mean if len(transform.mean) == c else (transform.mean[0],) * c
                std = transform.std if len(transform.std) == c else (transform.std[0],) * c
                transform = replace(transform, channels=c, mean=mean, std=std)
        return layout, transform

    def _canonical(self, name: str, stored: np.ndarray) -> np.ndarray:
        return stored.T.copy() if self._transposed[name] else stored.copy()

    def _stored(self, name: str, canonical: np.ndarray) -> np.ndarray:
        array = np.asarray(canonical, dtype=np.float32)
        return np.ascontiguousarray(array.T if self._transposed[name] else array)

    # --- sessions --------------------------------------------------------------------------

    def _options(self):
        so = self._ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        # No busy-waiting between ops: on 2 shared cores (Ray workers, other jobs) spinning
        # threads cost 10-20 % (ResNet-20: 4.2-4.4 s vs 4.9-5.2 s per 2,000 images, loaded).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return so

    def _session(self, overrides: Mapping[str, np.ndarray]):
        """A session over the graph, with ``overrides`` (canonical -> stored layout) put in."""
        so = self._options()
        model = self._bytes
        if self.swap == "inputs":
            model = self._inputs_model()
        elif overrides:
            model = self._serialise(overrides)
        try:
            return self._ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise UserError(
                f"{self.source}: ONNX Runtime cannot load it ({first_line(exc)})"
            ) from None

    def _serialise(self, overrides: Mapping[str, np.ndarray]) -> bytes:
        """The graph with ``overrides`` written into its initializers, serialised; the
        in-memory graph is put back to the pristine bytes afterwards."""
        inits = {t.name: t for t in self.proto.graph.initializer}
        touched = []
        try:
            for name, array in overrides.items():
                tensor = inits[self._init_name[name]]
                tensor.raw_data = np.ascontiguousarray(array, "<f4").tobytes()
                touched.append(name)
            return self.proto.SerializeToString()
        finally:
            for name in touched:
                inits[self._init_name[name]].raw_data = self._pristine_raw[name]

    def _inputs_model(self) -> bytes:
        if not hasattr(self, "_inputs_bytes"):
            import onnx
            from onnx import helper

            proto = onnx.ModelProto()
            proto.CopyFrom(self.proto)
            inits = {t.name: t for t in proto.graph.initializer}
            for init_name in self._init_name.values():
                t = inits[init_name]
                proto.graph.input.append(
                    helper.make_tensor_value_info(init_name, t.data_type, list(t.dims))
                )
            self._inputs_bytes = proto.SerializeToString()
        return self._inputs_bytes

    # --- the Backend protocol ----------------------------------------------------------------

    def layers(self) -> list[LayerInfo]:
        return list(self._layers)

    def _check(self, name: str) -> None:
        if name not in self._pristine:
            raise UserError(
                f"unknown layer {name!r}; clusterable layers: {', '.join(self._pristine)}"
            )

    def get_weights(self, name: str) -> np.ndarray:
        self._check(name)
        return self._canonical(name, self._pristine[name])

    def current_weights(self, name: str) -> np.ndarray:
        self._check(name)
        return self._canonical(name, self._current.get(name, self._pristine[name]))

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        staged = {}
        for name, value in weights.items():
            self._check(name)
            expected = (
                self._pristine[name].shape[::-1]
                if self._transposed[name]
                else (self._pristine[name].shape)
            )
            array = np.asarray(value, dtype=np.float32)
            if array.shape != tuple(expected):
                raise ValueError(f"{name}: shape {array.shape} != {tuple(expected)}")
            staged[name] = self._stored(name, array)
        self._current.update(staged)
        self._dirty = True

    def restore(self) -> None:
        self._current.clear()
        self._session_now = self._pristine_session
        self._dirty = False

    def prepare(self) -> None:
        """Build the session for the current weights now (:meth:`evaluate` does it otherwise);
        a no-op unless ``swap="rebuild"`` and the weights changed."""
        self._ready_session()

    def _ready_session(self):
        if self._dirty and self.swap == "rebuild":
            self._session_now = (
                self._session(self._current) if self._current else (self._pristine_session)
            )
        self._dirty = False
        return self._session_now

    def predict(self, split) -> np.ndarray:
        """Logits, float32 (N, classes), of the current weights on ``split``."""
        session = self._ready_session()
        feeds = {}
        if self.swap == "inputs":
            feeds = {self._init_name[n]: a for n, a in self._current.items()}
        out = [
            session.run([self._output], {self._input: x, **feeds})[0]
            for x in self.feeder.batches(split, self.batch_size)
        ]
        logits = np.concatenate(out)
        return logits.reshape(logits.shape[0], -1)

    def evaluate(self, split) -> Accuracy:
        self._ready_session()  # a swap's session build is not inference time
        start = time.perf_counter()
        logits = self.predict(split)
        seconds = time.perf_counter() - start
        return accuracy_from_logits(logits, np.asarray(split.labels, np.int64), seconds)

    def n_unclustered(self) -> int:
        return self._n_unclustered

    # --- export ----------------------------------------------------------------------------

    def current_model(self):
        """A copy of the ``onnx.ModelProto`` holding the current weights."""
        import onnx
        from onnx import numpy_helper

        proto = onnx.ModelProto()
        proto.CopyFrom(self.proto)
        by_init = {self._init_name[n]: a for n, a in self._current.items()}
        for t in proto.graph.initializer:
            if t.name in by_init:
                t.CopyFrom(numpy_helper.from_array(by_init[t.name], t.name))
        return proto


# --- the plugin: user files, registry networks, writing ----------------------------------


def _from_file(path: Path, transform: ImageTransform, threads: int) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(path, transform=transform, threads=threads)


def _from_network(
    spec, model, transform: ImageTransform, threads: int, *, cache_dir=None, weights_path=None
) -> OnnxRuntimeBackend:
    """A PyTorch registry network exported to ONNX: cached under ``cache_dir`` by the sha256
    of ``weights_path`` when both are given, else written to a temporary file."""
    import tempfile

    import torch

    from weightshare.backends.onnx_export import cached_onnx, export_onnx

    example = torch.zeros(1, transform.channels, transform.size, transform.size)
    if cache_dir is not None and weights_path is not None:
        onnx_path = cached_onnx(model, example, Path(cache_dir), spec.name, Path(weights_path))
        return OnnxRuntimeBackend(onnx_path, transform=transform, threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, example, Path(tmp) / f"{spec.name}.onnx")
        return OnnxRuntimeBackend(onnx_path.read_bytes(), transform=transform, threads=threads)


def _write(backend: OnnxRuntimeBackend, out: Path, stem: str, notes: list[str]) -> list[Path]:
    """``<stem>.onnx`` with the current weights."""
    from weightshare.outputs import atomic_path

    onnx, _ = _import_ort()
    path = out / f"{stem}.onnx"
    with atomic_path(path) as tmp:
        onnx.save(backend.current_model(), str(tmp))
    return [path]


PLUGIN = BackendPlugin(
    name="onnxruntime",
    model_format="onnx",
    sniff=lambda path, members: path.suffix.lower() == ".onnx",
    takes=lambda spec: spec.framework == "pytorch",
    from_file=_from_file,
    from_network=_from_network,
    write=_write,
)
