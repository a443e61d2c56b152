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
            "fp32" if row["k"] is None else _k_text(row),
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
    estimate = result["compression_ratio_entropy_estimate"]
    console.print(
        "compression ratio: "
        f"fixed-length {result['compression_ratio_fixed']:.2f}x (clustered layers), "
        f"whole model {result['compression_ratio_model']:.2f}x"
        + ("" if estimate is None else f", entropy estimate {estimate:.2f}x (clustered layers)")
    )


def _k_text(row: dict) -> str:
    """A layer's k, with its pruning sparsity when it has one (``16 @ 50 %``)."""
    sparsity = row.get("sparsity") or 0.0
    return str(row["k"]) + (f" @ {100 * sparsity:g} %" if sparsity else "")


def print_exploration_summary(doc: dict, paths) -> None:
    """The end-of-run summary of ``results.json``: target, best point, Pareto front, files."""
    base = doc["baseline"]
    console.print(
        f"[bold]{doc['network']}[/bold] {doc['optimization']}: {doc['evaluations']} evaluations "
        f"in {doc['wall_seconds']:.0f} s; fp32 accuracy {_pct(base['accuracy_search'])} "
        f"(search), target {_pct(doc['accuracy_target'])} ({doc['accuracy_ratio']:g} x fp32)"
    )
    table = Table(title="feasible Pareto front (search images)")
    for col in (
        "trial",
        "size KiB",
        "ratio fixed",
        "ratio coded",
        "search",
        "full search",
        "holdout",
        "passes holdout",
    ):
        table.add_column(col, justify="right")
    best = doc["best"]
    for p in doc["pareto"]:
        mark = " *" if best and p["trial"] == best["trial"] else ""
        table.add_row(
            f"{p['trial']}{mark}",
            f"{p['size_bytes'] / 1024:.1f}",
            f"{p['compression_ratio_fixed']:.2f}x",
            f"{p['compression_ratio_coded']:.2f}x",
            _pct(p["accuracy_search"]),
            _pct(p["accuracy_search_full"]) if "accuracy_search_full" in p else "",
            _pct(p["accuracy_holdout"]) if "accuracy_holdout" in p else "",
            {True: "yes", False: "NO"}.get(p.get("passes_holdout"), ""),
        )
    console.print(table)
    if best is None:
        console.print(
            "[bold red]no evaluated point meets the accuracy target.[/bold red] "
            "Closest points (most accurate first):"
        )
        for p in doc["closest"]:
            console.print(
                f"  trial {p['trial']}: {_pct(p['accuracy_search'])} at "
                f"{p['compression_ratio_fixed']:.2f}x, k = {p['k_per_layer']}"
            )
    else:
        if "accuracy_holdout" in best:
            verdict = (
                f"holdout {_pct(best['accuracy_holdout'])} -> "
                + ("passes" if best.get("passes_holdout") else "[bold red]fails[/bold red]")
                + " the target there"
            )
        else:
            verdict = "not scored on the holdout (the run was interrupted: rerun to finish)"
        console.print(
            f"best (*): trial {best['trial']}, {best['compression_ratio_fixed']:.2f}x "
            f"fixed-length, {best['compression_ratio_coded']:.2f}x coded (clustered layers), "
            + verdict
        )
        console.print(f"k per layer: {best['k_per_layer']}")
        if "sparsity_per_layer" in best:
            pruned = best["sparsity_per_layer"]
            console.print(f"sparsity per layer (magnitude, no retraining): {pruned}")
    console.print("wrote " + ", ".join(str(p) for p in paths))
