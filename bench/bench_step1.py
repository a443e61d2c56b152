"""Step 1 with and without prefix reuse, same evaluator, same candidates, one run.

    python bench/bench_step1.py [--networks lenet5_fashionmnist,resnet20_fashionmnist]
                                [--dataset_scale 0.1] [--threads 1] [--k-grid 2,3,4,...]
                                [--clustering weighted]

For each network (PyTorch backend, its baseline weights, the exploration's search split at
``--dataset_scale``): every (layer, k) of the grid is clustered first (a warm-up, so the timing
is the scoring only); then every one-layer candidate is scored with the full forward pass and
with prefix reuse (the layers before the shared one run once per layer), and the two results
are checked to be identical. Prints a markdown table of the scoring seconds and their ratio.
``--clustering weighted`` clusters with the Fisher-weighted k-means (1,024 calibration images),
which keeps prefix reuse (``--correct`` would turn it off, so it is not offered here).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.cli_edge import one_line_errors
from weightshare.dse.correction import CLUSTERINGS, PerBitOptions
from weightshare.dse.sensitivity import one_layer_candidates
from weightshare.dse.space import DEFAULT_K_GRID, layer_grid, parse_k_grid
from weightshare.modes.loading import EvaluatorFactory
from weightshare.networks.checkpoints import BASELINE_DIR


def step_one(evaluator, candidates, reuse: bool) -> tuple[float, list]:
    """Seconds to score ``candidates`` on the search split, and their figures."""
    evaluator.prefix_reuse = reuse
    start = time.perf_counter()
    results = [evaluator.evaluate(c) for c in candidates]
    seconds = time.perf_counter() - start
    return seconds, [(r.correct, r.top5, r.kl, r.flip, r.cross_entropy) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--networks", default="lenet5_fashionmnist,resnet20_fashionmnist")
    parser.add_argument("--dataset_scale", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--k-grid", default=",".join(map(str, DEFAULT_K_GRID)))
    parser.add_argument("--clustering", choices=CLUSTERINGS, default="kmeans")
    args = parser.parse_args()
    grid = parse_k_grid(args.k_grid)
    print("| network | layers x k | images | full pass s | prefix reuse s | ratio | same results |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for network in args.networks.split(","):
        factory = EvaluatorFactory(
            network,
            str(BASELINE_DIR / f"{network}.pt"),
            None,
            args.dataset_scale,
            args.threads,
            perbit=PerBitOptions(clustering=args.clustering),
        )
        evaluator = factory()
        grids = {layer.name: layer_grid(grid, layer.n_weights) for layer in evaluator.layers}
        candidates = one_layer_candidates(grids)
        for layer, ks in grids.items():  # warm-up: k-means and coded sizes
            for k in ks:
                evaluator.coded_bits(layer, k)
        evaluator.reference("search")
        full_s, full = step_one(evaluator, candidates, reuse=False)
        reuse_s, reused = step_one(evaluator, candidates, reuse=True)
        print(
            f"| {network} | {len(candidates)} | {len(evaluator.splits['search'])} | "
            f"{full_s:.1f} | {reuse_s:.1f} | {full_s / reuse_s:.2f} | {full == reused} |",
            flush=True,
        )


if __name__ == "__main__":
    raise SystemExit(one_line_errors(main))
