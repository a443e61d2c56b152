"""Joint retraining-free search (``--prune-grid``) against sharing alone, same budget.

    python bench/bench_prune_grid.py [--networks lenet300_fashionmnist lenet5_fashionmnist]
        [--prune-grid 0,0.5,0.7,0.8,0.9] [--n-trials 100] [--dataset_scale 0.1]
        [--out runs/bench_prune_grid]

Per registry network, two explorations with the same command except ``--prune-grid``
(``--optimization two_step_optimization --workers 0 --threads 1``, the same search budget
``--n-trials``, the network's MLPerf target): sharing alone, then the joint search. Each best
point is then encoded (``--mode encode``) and the file's size checked against the reported
``size_bytes``. Prints a markdown table (best coded ratio of the whole model file against the
fp32 state dict, holdout accuracy and verdict, the ratio of the smallest front point that passes
the holdout, evaluations, wall seconds) and writes the figures to ``OUT/figures.json``. A rerun
resumes each exploration from its study (nothing is repeated).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from weightshare.outputs import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]


def explore(network: str, log_dir: Path, args, prune_grid: str | None) -> dict:
    """Run (or resume) one exploration and encode its best point; its figures."""
    command = [
        sys.executable, "main.py", "--mode", "exploration", "--network_dataset", network,
        "--log_file", str(log_dir), "--dataset_scale", str(args.dataset_scale),
        "--optimization", "two_step_optimization", "--workers", "0", "--threads", "1",
        "--n-trials", str(args.n_trials),
        *(["--prune-grid", prune_grid] if prune_grid else []),
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    doc = json.loads((log_dir / "results.json").read_text())
    best = doc["best"]
    passing = [p for p in doc["pareto"] if p.get("passes_holdout")]
    row = {
        "command": " ".join(command[1:]),
        "evaluations": doc["evaluations"],
        "wall_seconds_this_run": round(seconds, 1),
        "wall_seconds_study": round(doc["wall_seconds"], 1),
        "baseline_holdout": doc["baseline"]["accuracy_holdout"],
        "best": best,
        # the smallest point of the front (smallest first) that passes the holdout too
        "best_passing_holdout": passing[0] if passing else None,
    }
    if best is not None:
        model_file = log_dir / "best.wsz"
        encode = [
            sys.executable, "main.py", "--mode", "encode", "--log_file", str(log_dir),
            "--out", str(model_file), "--threads", "1",
        ]  # fmt: skip
        done = subprocess.run(encode, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(encode)} failed:\n{done.stderr[-3000:]}")
        row["encoded_bytes"] = model_file.stat().st_size
        row["encoded_equals_reported"] = row["encoded_bytes"] == best["size_bytes"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--networks", nargs="+", default=["lenet300_fashionmnist", "lenet5_fashionmnist"]
    )
    parser.add_argument("--prune-grid", default="0,0.5,0.7,0.8,0.9")
    parser.add_argument("--n-trials", type=int, default=100)
    parser.add_argument("--dataset_scale", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_prune_grid")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    figures: dict = {"prune_grid": args.prune_grid, "n_trials": args.n_trials, "networks": {}}
    print(
        "| network | search | best coded ratio | holdout % | passes holdout | smallest passing "
        "holdout | evaluations | wall s |"
    )
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for network in args.networks:
        rows = figures["networks"][network] = {}
        for mode, grid in (("sharing alone", None), (f"joint {args.prune_grid}", args.prune_grid)):
            name = "sharing" if grid is None else "joint-" + grid.replace(",", "_")
            log_dir = args.out / network / name  # one study per grid; sharing alone shared
            row = rows[mode] = explore(network, log_dir, args, grid)
            best = row["best"] or {}
            ratio = best.get("compression_ratio_model_coded", float("nan"))
            holdout = 100 * best.get("accuracy_holdout", float("nan"))
            passing = (row["best_passing_holdout"] or {}).get("compression_ratio_model_coded")
            print(
                f"| {network} | {mode} | {ratio:.2f}x | {holdout:.2f} | "
                f"{best.get('passes_holdout')} | "
                f"{'none' if passing is None else f'{passing:.2f}x'} | {row['evaluations']} | "
                f"{row['wall_seconds_study']:.0f} |",
                flush=True,
            )
            write_text_atomic(args.out / "figures.json", json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
