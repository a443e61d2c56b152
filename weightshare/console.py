"""Human-readable summaries on the terminal (rich tables); files are written elsewhere."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def print_layer_table(result: dict) -> None:
    """Per-layer table (name, weights, k, bits/weight, inertia) and the accuracy summary of an
    ``evaluation.json`` dict."""
    table = Table(title=f"{result['network']}: weight sharing per layer ({result['granularity']})")
    for col in ("layer", "kind", "weights", "k", "bits/w", "inertia", "init"):
        table.add_column(col, justify="left" if col in ("layer", "kind", "init") else "right")
    for row in result["layers"]:
        table.add_row(
            row["name"],
            row["kind"],
            f"{row['n_weights']:,}",
            "fp32" if row["k"] is None else str(row["k"]),
            f"{row['bits']:.3f}",
            "" if row["inertia"] is None else f"{row['inertia']:.4g}",
            row["init"] or "",
        )
    console.print(table)
    summary = Table(title="accuracy (top-1) and size")
    summary.add_column("")
    for col in ("search", "holdout"):
        summary.add_column(col, justify="right")
    base, cand = result["baseline"], result["candidate"]
    n_search, n_holdout = result["splits"]["search"], result["splits"]["holdout"]
    summary.add_row("images", f"{n_search:,}", f"{n_holdout:,}")
    summary.add_row("baseline", _pct(base["accuracy_search"]), _pct(base["accuracy_holdout"]))
    summary.add_row("weight-shared", _pct(cand["accuracy_search"]), _pct(cand["accuracy_holdout"]))
    summary.add_row(
        "change (points)",
        f"{100 * (cand['accuracy_search'] - base['accuracy_search']):+.2f}",
        f"{100 * (cand['accuracy_holdout'] - base['accuracy_holdout']):+.2f}",
    )
    console.print(summary)
    console.print(
        "compression ratio: "
        f"fixed-length {result['compression_ratio_fixed']:.2f}x (clustered layers), "
        f"whole model {result['compression_ratio_model']:.2f}x, "
        f"entropy estimate {result['compression_ratio_entropy_estimate']:.2f}x (clustered layers)"
    )
