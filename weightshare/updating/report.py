"""``partial_update.json`` and the plot: accuracy and cumulative bytes per round, per method."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from weightshare.outputs import atomic_path, write_text_atomic
from weightshare.updating.driver import RoundRecord


def write_json(path: Path, header: dict, records: Sequence[RoundRecord]) -> None:
    """Write ``header`` plus ``"rounds"``: one object per round per method."""
    document = {**header, "rounds": [asdict(r) for r in records]}
    write_text_atomic(path, json.dumps(document, indent=2))


def summary(records: Sequence[RoundRecord]) -> dict[str, dict[str, float]]:
    """Per method, over the update rounds (round >= 1; round 0 is the initial deployment):
    mean holdout/search accuracy, mean bytes per round (skipped rounds count as 0), mean share
    of the dense model, total bytes, skipped rounds. Empty when there is only round 0."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r.method for r in records):
        rows = [r for r in records if r.method == method and r.round >= 1]
        n = len(rows)
        if not n:
            continue
        out[method] = {
            "mean_accuracy_holdout": sum(r.accuracy_holdout for r in rows) / n,
            "mean_accuracy_search": sum(r.accuracy_search for r in rows) / n,
            "mean_bytes": sum(r.bytes_sent for r in rows) / n,
            "mean_share_of_dense": sum(r.bytes_sent / r.dense_bytes for r in rows) / n,
            "total_bytes": sum(r.bytes_sent for r in rows),
            "skipped_rounds": sum(r.skipped for r in rows),
        }
    return out


def plot(path: Path, records: Sequence[RoundRecord], title: str) -> None:
    """PNG: holdout accuracy of the device's model per round (left) and cumulative bytes sent
    (right, log scale), one line per method. No running maximum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for method in dict.fromkeys(r.method for r in records):
        rows = [r for r in records if r.method == method]
        rounds = [r.round for r in rows]
        left.plot(rounds, [100 * r.accuracy_holdout for r in rows], marker="o", label=method)
        total, cumulative = 0, []
        for r in rows:
            total += r.bytes_sent
            cumulative.append(max(total, 1))
        right.plot(rounds, cumulative, marker="o", label=method)
    left.set(xlabel="round", ylabel="holdout accuracy of the device's model (%)")
    right.set(xlabel="round", ylabel="cumulative bytes sent", yscale="log")
    left.grid(alpha=0.3)
    right.grid(alpha=0.3)
    left.legend()
    fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
