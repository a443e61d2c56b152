"""Importing Keras 3 on TensorFlow: once, with its thread pools set, and an actionable error.

Both the Keras networks (keras.applications zoo, the Fashion-MNIST twins, user ``.keras``
files) and the tensorflow backend need it, so it lives here, below both. TensorFlow is imported
only when this is called (~6 s).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys

from weightshare.errors import UserError


def preload_triton() -> None:
    """Load triton before TensorFlow, when both are installed and TensorFlow is not loaded yet.

    TensorFlow and triton (imported by ``torch.export`` and so by the ONNX exporter) both
    bundle LLVM: loading triton's library after TensorFlow's segfaults the process; before it,
    both work. Call this before anything imports TensorFlow in a process that may also export
    ONNX (:func:`import_keras` does; so does the test suite's conftest).
    """
    if "tensorflow" not in sys.modules and importlib.util.find_spec("triton") is not None:
        with contextlib.suppress(Exception):
            import triton  # noqa: F401


def import_keras(threads: int | None = None):
    """``keras`` on the TensorFlow backend, with TF's intra-op threads set when still possible."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    preload_triton()
    try:
        import keras
        import tensorflow as tf
    except ImportError as exc:
        raise UserError(
            f"the tensorflow backend needs tensorflow and keras 3 ({exc}); install them with "
            "'pip install tensorflow-cpu==2.21.0 keras==3.15.1'"
        ) from None
    if keras.backend.backend() != "tensorflow":
        raise UserError(
            f"the tensorflow backend needs KERAS_BACKEND=tensorflow; got "
            f"{keras.backend.backend()!r}"
        )
    if threads is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised in this process: the first setting stays
    return keras
