"""Models users bring with ``--model PATH``: what format a file is, and loading it safely.

Formats, by content (then by extension):

* ``onnx``: an ``.onnx`` file, run by ONNX Runtime;
* ``keras``: a Keras 3 ``.keras`` archive or a legacy full-model ``.h5``, loaded with
  ``safe_mode=True`` (no arbitrary Python from ``Lambda`` layers);
* ``torchscript``: ``torch.jit.save`` output (a zip holding ``code/`` and ``constants.pkl``);
  TorchScript runs only TorchScript code, never unpickled Python objects;
* ``state_dict``: a ``torch.save``-d mapping of names to tensors, loaded with
  ``weights_only=True`` into the architecture ``--network_dataset`` names.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from weightshare.errors import UserError, first_line

MODEL_FORMATS = ("onnx", "keras", "torchscript", "state_dict")


def model_format(path: str | Path) -> str:
    """One of ``MODEL_FORMATS`` for the file at ``path``.

    Raises:
        UserError: missing file, or a format none of the backends reads.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--model {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile as exc:
            raise UserError(f"--model {path} is a damaged archive ({exc})") from None
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "state_dict"
        if "config.json" in names and "model.weights.h5" in names:
            return "keras"
    raise UserError(
        f"--model {path} is not a model file this tool reads: give an .onnx file, a .keras/.h5 "
        "Keras model, a TorchScript file or a PyTorch state dict (with --network_dataset)"
    )


def load_keras_model(path: Path):
    """A Keras model from ``.keras``/``.h5`` (``safe_mode=True``, not compiled)."""
    from weightshare.backends.tf_keras import import_keras

    keras = import_keras()
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # keras raises ValueError, OSError, TypeError, h5py errors ...
        raise UserError(f"{path} is not a loadable Keras model ({first_line(exc)})") from None


def load_torchscript(path: Path):
    """A TorchScript module on the CPU."""
    import torch

    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.14, still loads
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # RuntimeError, ValueError, zip errors ...
        raise UserError(
            f"{path} is not a loadable TorchScript module ({first_line(exc)})"
        ) from None
