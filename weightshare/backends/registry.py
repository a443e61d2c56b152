"""Backends by name (``--backend``), and which backend reads a ``--model`` file.

Registering a backend is one line of :data:`BACKENDS`: its name and where its
:class:`~weightshare.backends.base.BackendPlugin` lives (``"module:attribute"``). Nothing is
imported until a backend is asked for, so this module (and ``--help``) stays light; a backend
module imports its framework only when it builds a backend. docs/backends.md, "How to add a
backend", has the steps.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

from weightshare.backends.base import BackendPlugin
from weightshare.errors import UserError
from weightshare.validation import check_choice

BACKENDS: dict[str, str] = {
    "pytorch": "weightshare.backends.pytorch:PLUGIN",
    "onnxruntime": "weightshare.backends.ort:PLUGIN",
    "tensorflow": "weightshare.backends.tf_keras:PLUGIN",
}
"""Backend name -> ``"module:attribute"`` of its plugin, in ``--help`` order."""

BACKEND_NAMES = tuple(BACKENDS)

STATE_DICT = "state_dict"
"""The ``--model`` format no backend owns: weights for ``--network_dataset``'s architecture."""


def get_plugin(name: str) -> BackendPlugin:
    """The plugin registered as ``name`` (its module imported now).

    Raises:
        UserError: ``name`` is not in :data:`BACKEND_NAMES`.
    """
    check_choice("--backend", name, BACKEND_NAMES)
    module, _, attribute = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def check_backend(backend: str | None) -> str | None:
    """``backend`` if it is None or one of :data:`BACKEND_NAMES`; UserError otherwise."""
    if backend is not None:
        check_choice("--backend", backend, BACKEND_NAMES)
    return backend


def plugins() -> list[BackendPlugin]:
    """Every registered plugin, in registration order."""
    return [get_plugin(name) for name in BACKENDS]


def model_formats() -> tuple[str, ...]:
    """The ``--model`` formats: each backend's own, then ``state_dict``."""
    return (*(p.model_format for p in plugins()), STATE_DICT)


def _zip_members(path: Path) -> tuple[str, ...] | None:
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return tuple(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise UserError(f"--model {path} is a damaged archive ({exc})") from None


def model_format(path: str | Path) -> str:
    """The format of the ``--model`` file at ``path``: a backend's ``model_format``, or
    ``state_dict`` (a ``torch.save``-d mapping of names to tensors, a zip holding ``data.pkl``).

    Each plugin's ``sniff`` is asked in registration order; the file is only looked at (its
    suffix, its zip member names), never loaded.

    Raises:
        UserError: missing file, or a format none of the backends reads.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--model {path} does not exist")
    members = _zip_members(path)
    for plugin in plugins():
        if plugin.sniff(path, members):
            return plugin.model_format
    if members is not None and any(n.endswith("data.pkl") for n in members):
        return STATE_DICT
    readers = ", ".join(f"{p.model_format} ({p.name})" for p in plugins())
    raise UserError(
        f"--model {path} is not a model file this tool reads: give one of {readers}, or a "
        f"PyTorch {STATE_DICT} (with --network_dataset)"
    )


def plugin_for_format(model_format: str) -> BackendPlugin:
    """The backend that runs ``model_format`` files natively (not ``state_dict``)."""
    for plugin in plugins():
        if plugin.model_format == model_format:
            return plugin
    raise ValueError(f"no backend reads {model_format!r} files")
