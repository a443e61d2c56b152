"""Holdout accuracy of uniform-k weight sharing with and without the issue-10 options.

    python bench/bench_perbit.py [--networks resnet20_fashionmnist ...] [--k 2 4 8 16]
        [--granularity layer] [--calibration-images 1024] [--threads 1] [--out FILE.json]

Per registry network (committed baseline weights): the fp32 holdout accuracy, then per k the
holdout accuracy with plain k-means, each option alone (``weighted``, ``bias``, ``bn``) and all
together (``all``), and the seconds each option adds (Fisher and input means once per network,
then per candidate: clustering, correction, BN re-estimation). Prints a markdown table and
writes the figures as JSON after each network (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.dse.clustering import ClusterCache
from weightshare.dse.correction import Calibrator, PerBitOptions
from weightshare.networks import NETWORKS
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.datasets import load_calibration, load_split

VARIANTS = {
    "plain": PerBitOptions(),
    "weighted": PerBitOptions(clustering="weighted"),
    "bias": PerBitOptions(correct=("bias",)),
    "bn": PerBitOptions(correct=("bn",)),
    "all": PerBitOptions(clustering="weighted", correct=("bias", "bn")),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--k", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--granularity", default="layer", choices=("layer", "channel"))
    parser.add_argument("--calibration-images", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    holdout = load_split("holdout")
    calibration = load_calibration(args.calibration_images)
    figures = {}
    print(f"granularity {args.granularity}, {args.calibration_images} calibration images")
    print("| network | fp32 | k | " + " | ".join(args.variants) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in args.variants) + " |")
    for name in args.networks:
        spec = NETWORKS[name]
        model = load_into(spec.build(), BASELINE_DIR / f"{name}.pt")
        backend = PyTorchBackend(model, spec.input_size, threads=args.threads)
        fp32 = backend.evaluate(holdout).top1
        names = [layer.name for layer in backend.layers()]
        pristine = {n: backend.get_weights(n) for n in names}
        start = time.perf_counter()
        full = Calibrator(backend, VARIANTS["all"], calibration)
        once = time.perf_counter() - start
        caches = {
            False: ClusterCache(pristine, granularity=args.granularity),
            True: ClusterCache(pristine, granularity=args.granularity, importance=full.importance),
        }
        entry = {"fp32": fp32, "calibration_once_s": once, "k": {}}
        for k in args.k:
            row = {}
            for variant in args.variants:
                options = VARIANTS[variant]
                calibrator = full.narrowed(options)
                t0 = time.perf_counter()
                weighted = options.clustering == "weighted"
                dense = {n: caches[weighted].get(n, k).dequantize() for n in names}
                t1 = time.perf_counter()
                backend.set_weights(dense)
                calibrator.apply(backend, dense)
                t2 = time.perf_counter()
                accuracy = backend.evaluate(holdout).top1
                backend.restore()
                row[variant] = {"holdout": accuracy, "cluster_s": t1 - t0, "correct_s": t2 - t1}
            entry["k"][k] = row
            cells = " | ".join(f"{100 * row[v]['holdout']:.2f}" for v in args.variants)
            print(f"| {name} | {100 * fp32:.2f} | {k} | {cells} |", flush=True)
        figures[name] = entry
        if args.out is not None:
            args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
