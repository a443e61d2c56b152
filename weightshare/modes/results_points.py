"""The candidates an exploration's ``results.json`` lists, picked by ``--trial best|N``.

``results.json`` (written by :mod:`weightshare.dse.report`) holds ``best`` (one point or null),
``pareto`` and ``closest`` (lists of points); each point has ``trial`` (the Optuna trial id)
and ``k_per_layer`` (layer name -> k), and, from a ``--prune-grid`` exploration,
``sparsity_per_layer`` (layer name -> magnitude-pruning sparsity, :func:`sparsity_map`).
``--mode encode --log_file DIR``, ``--mode evaluate --k-per-layer results.json`` and ``--mode
export`` pick their candidate here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weightshare.errors import UserError

POINT_LISTS = ("best", "pareto", "closest")


def is_results(data: Any) -> bool:
    """Whether a parsed JSON document is an exploration's results.json (not a layer -> k map)."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("network"), str)
        and any(key in data for key in POINT_LISTS)
    )


def listed_points(data: dict) -> list[dict]:
    """Every point of ``best``, ``pareto`` and ``closest``, in that order (dicts only)."""
    points = []
    for key in POINT_LISTS:
        value = data.get(key)
        for point in value if isinstance(value, list) else [value]:
            if isinstance(point, dict):
                points.append(point)
    return points


def pick_point(data: dict, path: Path, trial: int | str) -> dict:
    """The point of ``trial`` (``"best"`` or a trial number listed in the file).

    Args:
        data: the parsed results.json (see :func:`is_results`).
        path: the file, for messages.
        trial: ``"best"`` or a trial id >= 0.

    Returns:
        The point dict (it has ``trial`` and ``k_per_layer``; the map itself is not checked).

    Raises:
        UserError: no best candidate (for ``"best"``), or a trial the file does not list; the
            message lists the trials it does list.
    """
    trials = sorted({p["trial"] for p in listed_points(data) if isinstance(p.get("trial"), int)})
    if trial == "best":
        best = data.get("best")
        if isinstance(best, dict):
            return best
        raise UserError(
            f"{path} has no best candidate (status {data.get('status')!r}: none met the "
            f"accuracy target, or the run did not finish); pick one with --trial N, N in {trials}"
        )
    for point in listed_points(data):
        if point.get("trial") == trial:
            return point
    raise UserError(
        f"--trial {trial} is not listed in {path} (best, pareto, closest); trials: {trials}"
    )


def sparsity_map(raw: Any, k_map: dict[str, int], where: str) -> dict[str, float]:
    """A point's ``sparsity_per_layer`` (``--prune-grid`` explorations; absent or null: no
    layer pruned): layer -> sparsity in [0, 1) of a layer the point shares; zeros dropped."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{where}: sparsity_per_layer must be an object layer -> sparsity")
    out = {}
    for name, value in raw.items():
        if name not in k_map:
            raise UserError(f"{where}: sparsity_per_layer names {name!r}, which has no k")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise UserError(
                f"{where}: the sparsity of layer {name!r} must be a number in [0, 1); got {value!r}"
            )
        if value:
            out[str(name)] = float(value)
    return out
