"""Search algorithms side by side on one network, same split and target:
two_step_optimization vs the seed's algorithm (paper) vs plain NSGA-II.

    python bench/bench_exploration.py --network lenet5_fashionmnist --dataset_scale 0.1 \
        [--paper-trials 10000] [--out runs/bench] [--threads 1]

Each algorithm runs `python main.py --mode exploration` in-process (`--workers 0`, so the figure
is the algorithm's, not Ray's) into its own directory (reruns resume). Plain NSGA-II gets the same
number of evaluations as two-step used. Prints a markdown table from each results.json:
evaluations, images scored (and the share early stopping saved), wall seconds, best
fixed-length and coded ratios, accuracy on the whole search split
and on the holdout, and whether the best point passes the target on the holdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def explore(network: str, scale: float, optimization: str, out: Path, threads: int, *extra: str):
    args = [
        sys.executable,
        "main.py",
        "--mode",
        "exploration",
        "--network_dataset",
        network,
        "--dataset_scale",
        str(scale),
        "--optimization",
        optimization,
        "--workers",
        "0",
        "--threads",
        str(threads),
        "--log_file",
        str(out),
        *extra,
    ]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 3):
        sys.exit(f"{optimization} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads((out / "results.json").read_text())


def row(name: str, doc: dict) -> str:
    best = doc["best"] or {}
    fmt = lambda key: f"{100 * best[key]:.2f}" if key in best else "-"  # noqa: E731
    scored, whole = doc.get("images_scored", 0), doc.get("images_without_early_stopping", 0)
    saved = f"{scored:,} ({100 * (1 - scored / whole):.1f} % saved)" if whole else "-"
    return (
        f"| {name} | {doc['evaluations']} | {saved} | {doc['wall_seconds']:.0f} | "
        f"{best.get('compression_ratio_fixed', float('nan')):.2f} | "
        f"{best.get('compression_ratio_coded', float('nan')):.2f} | "
        f"{fmt('accuracy_search_full')} | {fmt('accuracy_holdout')} | "
        f"{best.get('passes_holdout', '-')} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--network", default="lenet5_fashionmnist")
    parser.add_argument("--dataset_scale", type=float, default=0.1)
    parser.add_argument(
        "--paper-trials",
        type=int,
        default=10_000,
        help="NSGA-II trials of the paper's algorithm (its own: 100 x 100)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    base = args.out / f"{args.network}@{args.dataset_scale:g}"
    docs = {
        "two_step_optimization": explore(
            args.network,
            args.dataset_scale,
            "two_step_optimization",
            base / "two_step",
            args.threads,
        )
    }
    docs["paper"] = explore(
        args.network,
        args.dataset_scale,
        "paper",
        base / "paper",
        args.threads,
        "--n-trials",
        str(args.paper_trials),
    )
    budget = docs["two_step_optimization"]["evaluations"]
    docs["nsga2"] = explore(
        args.network,
        args.dataset_scale,
        "nsga2",
        base / "nsga2",
        args.threads,
        "--n-trials",
        str(budget),
    )
    print(
        f"{args.network}, dataset_scale {args.dataset_scale:g}, target "
        f"{docs['paper']['accuracy_ratio']:g} x fp32; nsga2 budget = two-step's evaluations"
    )
    print(
        "| algorithm | evaluations | images scored | wall s | best ratio fixed | "
        "best ratio coded | full search % | holdout % | passes holdout |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, doc in docs.items():
        print(row(name, doc))


if __name__ == "__main__":
    main()
