"""Evaluation overhead: one candidate (swap cached clustered weights, forward over the search
split, restore) against a plain forward pass of the same split, run interleaved in one process.

    python bench/bench_evaluation.py [--networks lenet5_fashionmnist resnet20_fashionmnist]
                                     [--k 16] [--repeat 5] [--threads 2]

Prints a markdown table; the figure of merit is the ratio of medians (goal <= 1.2).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from weightshare.backends.pytorch import PyTorchBackend
from weightshare.dse.clustering import ClusterCache
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.datasets import load_split


def bench(name: str, k: int, repeat: int, threads: int) -> dict:
    spec = get_network(name)
    backend = PyTorchBackend(
        load_into(spec.build(), BASELINE_DIR / f"{name}.pt"), spec.input_size, threads=threads
    )
    split = load_split("search")
    cache = ClusterCache(
        {layer.name: backend.get_weights(layer.name) for layer in backend.layers()}
    )
    candidate = {layer.name: cache.get(layer.name, k).dequantize() for layer in backend.layers()}
    backend.evaluate(split)  # warm-up: tensors of the split are built once and cached
    plain, full = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        backend.evaluate(split)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        backend.set_weights(candidate)
        backend.evaluate(split)
        backend.restore()
        full.append(time.perf_counter() - start)
    return {
        "network": name,
        "images": len(split),
        "plain": statistics.median(plain),
        "candidate": statistics.median(full),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--networks", nargs="+", default=["lenet5_fashionmnist", "resnet20_fashionmnist"]
    )
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"k = {args.k}, {args.repeat} interleaved repeats, {args.threads} threads, medians")
    print(
        "| network | images | plain forward (s) | candidate: swap + forward + restore (s) | ratio |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in args.networks:
        r = bench(name, args.k, args.repeat, args.threads)
        print(
            f"| {r['network']} | {r['images']} | {r['plain']:.3f} | {r['candidate']:.3f} "
            f"| {r['candidate'] / r['plain']:.3f} |"
        )


if __name__ == "__main__":
    main()
