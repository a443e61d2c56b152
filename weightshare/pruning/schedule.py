"""Per-round pruning targets of the iterative prune/retrain schedule.

Round ``i`` of ``n`` prunes each layer to a fraction of its final sparsity ``s``:

* ``linear`` (Han et al.'s plain schedule): ``s * i / n``. The kept fraction falls by the
  largest factor in the last round (0.935 in 5 rounds: 25.2 % -> 6.5 % kept, a factor 3.9).
* ``geometric``: the kept fraction shrinks by the same factor every round,
  ``1 - (1 - s) ** (i / n)`` (0.935 in 5 rounds: 57.9, 33.5, 19.4, 11.2, 6.5 % kept), so each
  round removes the same share of what is left and the last round is as gentle as the first.
"""

from __future__ import annotations

from collections.abc import Mapping

SCHEDULES = ("linear", "geometric")  # --prune-schedule


def _fraction(final: float, i: int, steps: int, schedule: str) -> float:
    if schedule == "linear":
        return final * i / steps
    return 1.0 - (1.0 - final) ** (i / steps)


def round_targets(
    sparsity: float | Mapping[str, float], steps: int, schedule: str = "linear"
) -> list[float | dict[str, float]]:
    """The sparsity each of ``steps`` rounds prunes to.

    Args:
        sparsity: final fraction removed, one float or weight key -> float, each in [0, 1)
            (trusted: validated at the mode's edge).
        steps: rounds, >= 1.
        schedule: ``linear`` or ``geometric`` (:data:`SCHEDULES`).

    Returns:
        ``steps`` targets of the same form as ``sparsity``; the last one equals it exactly.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}")  # the modes validate the flag
    out: list[float | dict[str, float]] = []
    for i in range(1, steps + 1):
        if i == steps:
            out.append(dict(sparsity) if isinstance(sparsity, Mapping) else float(sparsity))
        elif isinstance(sparsity, Mapping):
            out.append({k: _fraction(v, i, steps, schedule) for k, v in sparsity.items()})
        else:
            out.append(_fraction(sparsity, i, steps, schedule))
    return out
