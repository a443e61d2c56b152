"""The exploration's best ratio at the 99 % target with and without the issue-10 options.

    python bench/bench_perbit_exploration.py --network NET --options="--correct bn"
        [--common="--confirm-margin 1"] [--out-dir runs/perbit] [--dataset_scale 0.1]
        [--threads 1] [--reuse]

Runs the same exploration twice (same strategy, seed, grid and budget: two-step, ``--n-trials
0``, in-process), once plain and once with ``--options`` (a space-separated string of flags,
for example ``"--clustering weighted --correct bn"``; ``--common`` adds flags to both runs),
each with ``python main.py --mode exploration`` exactly as printed, then prints one markdown row
per run: evaluations, wall seconds, the best point's fixed and coded ratios (clustered layers),
its accuracy on the whole search split and the holdout, whether it passes the holdout, and the
coded ratio's rise. Choose
``--options`` beforehand on the search split (``bench_perbit.py --split search``), never from
these holdout figures. ``--reuse`` reads a run directory that already holds results.json
instead of running it again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
K_GRID = "2,3,4,6,8,12,16,24,32"


def command(network: str, out: Path, options: list[str], scale: float, threads: int) -> list[str]:
    """The ``main.py`` command line of one run."""
    return [
        "main.py", "--mode", "exploration", "--network_dataset", network,
        "--dataset_scale", f"{scale:g}", "--optimization", "two_step_optimization",
        "--workers", "0", "--threads", str(threads), "--k-grid", K_GRID, "--n-trials", "0",
        "--log_file", str(out), *options,
    ]  # fmt: skip


def row(label: str, doc: dict) -> dict:
    """The figures of one results.json: the best point and the run's cost."""
    best = doc["best"]
    return {
        "run": label,
        "evaluations": doc["evaluations"],
        "wall_s": doc["wall_seconds"],
        "ratio_fixed": best["compression_ratio_fixed"],
        "ratio_coded": best["compression_ratio_coded"],
        "search_full": best.get("accuracy_search_full"),
        "holdout": best.get("accuracy_holdout"),
        "passes_holdout": best.get("passes_holdout"),
        "target": doc["accuracy_target"],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--network", required=True)
    parser.add_argument("--options", required=True, help='e.g. --options="--correct bn"')
    parser.add_argument(
        "--common", default="", help='flags for both runs, e.g. --common="--confirm-margin 1"'
    )
    parser.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "perbit")
    parser.add_argument("--dataset_scale", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    options, common = shlex.split(args.options), shlex.split(args.common)
    runs = {"plain": common, " ".join(options): [*common, *options]}
    rows = []
    for i, (label, flags) in enumerate(runs.items()):
        out = args.out_dir / f"{args.network}_{'plain' if i == 0 else 'options'}"
        cmd = command(args.network, out, flags, args.dataset_scale, args.threads)
        if not (args.reuse and (out / "results.json").exists()):
            print("python " + shlex.join(cmd), flush=True)
            subprocess.run([sys.executable, *cmd], cwd=ROOT, check=True)
        rows.append(row(label, json.loads((out / "results.json").read_text())))
    base = rows[0]["ratio_coded"]
    print(f"\n{args.network}, target {_pct(rows[0]['target'])} % (search images)")
    print(
        "| options | evaluations | wall s | best ratio fixed | best ratio coded | coded vs plain "
        "| whole search split % | holdout % | passes holdout |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(
            f"| {r['run']} | {r['evaluations']} | {r['wall_s']:.0f} | {r['ratio_fixed']:.2f} "
            f"| {r['ratio_coded']:.2f} | {100 * (r['ratio_coded'] / base - 1):+.1f} % "
            f"| {_pct(r['search_full'])} | {_pct(r['holdout'])} | {r['passes_holdout']} |"
        )


if __name__ == "__main__":
    main()
