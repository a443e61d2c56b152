"""Replay a run from its update files alone, as a device would.

The device starts from the shared random init (regenerated from the run's seed) and applies the
files in round order, each to the base it names (its deployed model, the init, or zeros); rounds
without a file leave its model as it is. Every round's model is checked against the
``device_sha256`` the server recorded in ``partial_update.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from weightshare.codecs.residual import fingerprint
from weightshare.codecs.update import decode_update, read_update_info
from weightshare.errors import UserError
from weightshare.networks.registry import get_network
from weightshare.updating.driver import shared_init, zero_state


def read_run(run_dir: Path) -> dict:
    """``partial_update.json`` of ``run_dir`` (UserError if missing or not one)."""
    path = Path(run_dir) / "partial_update.json"
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"--replay: {path} not found (the directory of a partial_update run)"
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"--replay: {path} is not readable JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("rounds"), list):
        raise UserError(f"--replay: {path} has no 'rounds' list")
    return document


def replay(run_dir: Path) -> dict[str, list[dict[str, np.ndarray]]]:
    """Every method's device model after every round, rebuilt from the files.

    Returns:
        method -> one state dict per round (in round order).

    Raises:
        UserError: a file is missing, corrupt (FormatError), applies to another base, or
            rebuilds a model other than the one the server recorded.
    """
    run_dir = Path(run_dir)
    document = read_run(run_dir)
    spec = get_network(document["network"])
    init = shared_init(spec, int(document["settings"]["seed"]))
    bases = {"init": init, "zero": zero_state(init)}
    devices: dict[str, dict[str, np.ndarray]] = {}
    out: dict[str, list[dict[str, np.ndarray]]] = {}
    for record in document["rounds"]:
        method = record["method"]
        device = devices.setdefault(method, init)
        if record["file"] is not None:
            path = run_dir / record["file"]
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UserError(f"--replay: cannot read update file {path} ({exc})") from None
            try:
                _, _, info = read_update_info(data)
                base = bases.get(info["base"], device)
                device = decode_update(data, base).state
            except UserError as exc:
                raise type(exc)(f"{path}: {exc}") from None
        if fingerprint(device) != record["device_sha256"]:
            raise UserError(
                f"--replay: {method} round {record['round']}: the device model rebuilt from the "
                "files differs from the one the server recorded"
            )
        devices[method] = device
        out.setdefault(method, []).append(device)
    return out
