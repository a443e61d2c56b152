"""Candidates per second on Ray with 1 and 2 workers (and the in-process executor), same
candidates, one run: the ratio is the figure of merit.

    python bench/bench_workers.py [--network lenet5_fashionmnist] [--dataset_scale 0.2]
                                  [--candidates 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from weightshare.dse import ray_runtime
from weightshare.dse.executor import LocalExecutor, RayExecutor, Task, run_all
from weightshare.dse.space import DEFAULT_K_GRID, Candidate
from weightshare.modes.loading import EvaluatorFactory
from weightshare.networks.checkpoints import BASELINE_DIR


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--network", default="lenet5_fashionmnist")
    parser.add_argument("--dataset_scale", type=float, default=0.2)
    parser.add_argument("--candidates", type=int, default=40)
    args = parser.parse_args()
    checkpoint = str(BASELINE_DIR / f"{args.network}.pt")
    grid = DEFAULT_K_GRID
    rows = []
    for workers in (0, 1, 2):
        factory = EvaluatorFactory(
            args.network,
            checkpoint,
            None,
            args.dataset_scale,
            2 if workers == 0 else max(1, 2 // workers),
        )
        if workers == 0:
            executor = LocalExecutor(factory)
        else:
            ray_runtime.start(None, 2)
            executor = RayExecutor(factory, workers)
        layers = [x.name for x in executor.describe().layers]
        warm = [Task(("warm", k), Candidate.of(dict.fromkeys(layers, k))) for k in grid]
        run_all(executor, warm)  # every (layer, k) clustered once: time the evaluations only
        tasks = [
            Task(i, Candidate.of({n: grid[(i + j) % len(grid)] for j, n in enumerate(layers)}))
            for i in range(args.candidates)
        ]
        start = time.perf_counter()
        run_all(executor, tasks)
        rows.append((workers, args.candidates / (time.perf_counter() - start)))
        executor.close()
    print(f"{args.network}, dataset_scale {args.dataset_scale:g}, {args.candidates} candidates")
    print("| executor | candidates/s | vs 1 Ray worker |")
    print("| --- | ---: | ---: |")
    one = dict(rows)[1]
    for workers, rate in rows:
        name = "in-process (2 threads)" if workers == 0 else f"Ray, {workers} worker(s)"
        print(f"| {name} | {rate:.1f} | {rate / one:.2f} |")


if __name__ == "__main__":
    main()
