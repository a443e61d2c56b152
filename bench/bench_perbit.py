"""Accuracy of uniform-k weight sharing with and without the issue-10 options.

    python bench/bench_perbit.py [--networks resnet20_fashionmnist ...] [--k 2 4 8 16]
        [--variants plain weighted bias bn all weighted+bn ...] [--split holdout|search]
        [--granularity layer] [--calibration-images 1024] [--threads 1] [--out FILE.json]

Per registry network (committed baseline weights): the fp32 accuracy, then per k the accuracy
with plain k-means, each option alone (``weighted``, ``bias``, ``bn``), all together (``all``)
or any ``+``-joined combination (``weighted+bn``), and the seconds each option adds (Fisher and
input means once per network, then per candidate: clustering, correction, BN re-estimation).
``--split holdout`` (default) gives the published table; ``--split search`` scores the whole
search split instead, which is where an exploration's options are chosen (never on the
holdout). Prints a markdown table and writes the figures as JSON after each network (``--out``).
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

VARIANTS = ("plain", "weighted", "bias", "bn", "all")


def variant_options(variant: str) -> PerBitOptions:
    """``plain``, ``all`` or a ``+``-joined set of ``weighted``, ``bias``, ``bn`` -> options."""
    if variant == "plain":
        return PerBitOptions()
    parts = ["weighted", "bias", "bn"] if variant == "all" else variant.split("+")
    bad = [p for p in parts if p not in ("weighted", "bias", "bn")]
    if bad or len(set(parts)) != len(parts):
        raise SystemExit(
            f"--variants: plain, all or a +-joined set of weighted, bias, bn; got {variant!r}"
        )
    correct = tuple(sorted(p for p in parts if p != "weighted"))
    return PerBitOptions(
        clustering="weighted" if "weighted" in parts else "kmeans", correct=correct
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--k", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--split", default="holdout", choices=("holdout", "search"))
    parser.add_argument("--granularity", default="layer", choices=("layer", "channel"))
    parser.add_argument("--calibration-images", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    options = {variant: variant_options(variant) for variant in args.variants}
    torch.set_num_threads(args.threads)
    scored = load_split(args.split)
    calibration = load_calibration(args.calibration_images)
    figures = {}
    print(
        f"{args.split} split ({len(scored)} images), granularity {args.granularity}, "
        f"{args.calibration_images} calibration images"
    )
    print("| network | fp32 | k | " + " | ".join(args.variants) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in args.variants) + " |")
    for name in args.networks:
        spec = NETWORKS[name]
        model = load_into(spec.build(), BASELINE_DIR / f"{name}.pt")
        backend = PyTorchBackend(model, spec.input_size, threads=args.threads)
        fp32 = backend.evaluate(scored).top1
        names = [layer.name for layer in backend.layers()]
        pristine = {n: backend.get_weights(n) for n in names}
        start = time.perf_counter()
        full = Calibrator(backend, variant_options("all"), calibration)
        once = time.perf_counter() - start
        caches = {
            False: ClusterCache(pristine, granularity=args.granularity),
            True: ClusterCache(pristine, granularity=args.granularity, importance=full.importance),
        }
        entry = {"fp32": fp32, "calibration_once_s": once, "k": {}}
        for k in args.k:
            row = {}
            for variant in args.variants:
                calibrator = full.narrowed(options[variant])
                t0 = time.perf_counter()
                weighted = options[variant].clustering == "weighted"
                dense = {n: caches[weighted].get(n, k).dequantize() for n in names}
                t1 = time.perf_counter()
                backend.set_weights(dense)
                calibrator.apply(backend, dense)
                t2 = time.perf_counter()
                accuracy = backend.evaluate(scored).top1
                backend.restore()
                row[variant] = {args.split: accuracy, "cluster_s": t1 - t0, "correct_s": t2 - t1}
            entry["k"][k] = row
            cells = " | ".join(f"{100 * row[v][args.split]:.2f}" for v in args.variants)
            print(f"| {name} | {100 * fp32:.2f} | {k} | {cells} |", flush=True)
        figures[name] = entry
        if args.out is not None:
            args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
