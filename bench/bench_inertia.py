"""Inertia of the default k-means ("best") against the paper's Lloyd with linear init, on every
clusterable layer of the registry networks (committed baselines, else seeded random init).

    python bench/bench_inertia.py [--k 2 4 8 16 32 64 128 256] [--granularity layer]
        [--networks NAME ...]

Prints a markdown table per network: layers x k pairs compared, how many are worse than linear
(must be 0), and the median / minimum ratio inertia(best) / inertia(linear).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.dse.clustering import share_weights
from weightshare.networks import NETWORKS
from weightshare.networks.checkpoints import BASELINE_DIR, load_into


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--k", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128, 256])
    parser.add_argument("--granularity", default="layer", choices=("layer", "channel"))
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    args = parser.parse_args()
    print(f"k in {args.k}, granularity {args.granularity}")
    print("| network | weights | (layer, k) pairs | worse than linear | median ratio | min ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in args.networks:
        spec = NETWORKS[name]
        path = BASELINE_DIR / f"{name}.pt"
        torch.manual_seed(0)
        model = load_into(spec.build(), path) if path.exists() else spec.build()
        backend = PyTorchBackend(model, spec.input_size)
        ratios = []
        for layer in backend.layers():
            weights = backend.get_weights(layer.name)
            for k in args.k:
                best = share_weights(weights, k, granularity=args.granularity)
                linear = share_weights(weights, k, granularity=args.granularity, init="linear")
                ratios.append(best.inertia / linear.inertia if linear.inertia else 1.0)
        worse = sum(r > 1.0 for r in ratios)
        source = "trained" if path.exists() else "random init"
        print(
            f"| {name} | {source} | {len(ratios)} | {worse} | {statistics.median(ratios):.3f} "
            f"| {min(ratios):.3f} |"
        )


if __name__ == "__main__":
    main()
