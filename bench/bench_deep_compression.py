"""Deep Compression on LeNet-300-100 and LeNet-5 (Fashion-MNIST), beside the paper's MNIST rows.

Usage (from the repository root; each network takes minutes on 2 shared cores):
    python bench/bench_deep_compression.py --out runs/bench_dc [--networks lenet300,lenet5]
        [--prune-steps 3] [--retrain-epochs 3] [--retrain-lr 0.02] [--finetune-centroids 2]
        [--centroid-lr 0.001] [--fc-bits 5] [--threads 1]

Runs ``python main.py --mode deep_compression`` per network with those flags (default
sparsities: the paper's kept fractions, 5-bit shared values, ans coder) and prints each
``deep_compression.json`` as a markdown table (the paper's columns) plus the paper's MNIST
totals (LeNet-300-100 40x, LeNet-5 39x; Han, Mao, Dally, ICLR 2016, tables 2-3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = {
    "lenet300_fashionmnist": "MNIST (paper): 8 % kept, 6 -> 5.1 weight bits, 5 -> 3.7 index "
    "bits, 32x (P+Q) -> 40x (P+Q+H), top-1 error 1.64 -> 1.58 %",
    "lenet5_fashionmnist": "MNIST (paper): 8 % kept, 5.3 -> 4.1 weight bits, 5 -> 4.4 index "
    "bits, 33x (P+Q) -> 39x (P+Q+H), top-1 error 0.80 -> 0.74 %",
}


def markdown(doc: dict) -> str:
    """The table of one ``deep_compression.json``."""
    lines = [
        f"**{doc['network']}**",
        "",
        "| layer | #W | kept | weight bits P+Q -> H | index bits P+Q -> H | P | P+Q | P+Q+H |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for r in [*doc["table"]["layers"], doc["table"]["total"]]:
        lines.append(
            f"| {r['layer']} | {r['weights']} | {100 * r['kept']:.2f} % | "
            f"{r['weight_bits_pq']:.2f} -> {r['weight_bits_pqh']:.2f} | "
            f"{r['index_bits_pq']:.2f} -> {r['index_bits_pqh']:.2f} | {r['ratio_p']:.1f}x | "
            f"{r['ratio_pq']:.1f}x | {r['ratio_pqh']:.1f}x |"
        )
    t = doc["table"]["total"]
    lines += [
        "",
        f"Whole file {t['file_bytes_pqh']} B vs fp32 {t['dense_bytes']} B. Accuracy "
        "(search / holdout): "
        + "; ".join(
            f"{k} {100 * v['search']:.2f} / {100 * v['holdout']:.2f}"
            for k, v in doc["accuracy"].items()
        )
        + f". Holdout drop {doc['holdout_drop_points']:.2f} points.",
        "",
        PAPER.get(doc["network"], ""),
    ]
    return "\n".join(lines)


def main() -> int:
    """Run the pipeline per network and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench_dc"))
    p.add_argument("--networks", default="lenet300,lenet5")
    p.add_argument("--prune-steps", default="3")
    p.add_argument("--retrain-epochs", default="3")
    p.add_argument("--retrain-lr", default="0.02")
    p.add_argument("--finetune-centroids", default="2")
    p.add_argument("--centroid-lr", default="0.001")
    p.add_argument("--fc-bits", default="5")
    p.add_argument("--threads", default="1")
    args = p.parse_args()
    for short in args.networks.split(","):
        name = f"{short}_fashionmnist"
        out = args.out / name
        cmd = [
            sys.executable, "main.py", "--mode", "deep_compression", "--network_dataset", name,
            "--log_file", str(out), "--prune-steps", args.prune_steps,
            "--retrain-epochs", args.retrain_epochs, "--retrain-lr", args.retrain_lr,
            "--finetune-centroids", args.finetune_centroids, "--centroid-lr", args.centroid_lr,
            "--fc-bits", args.fc_bits, "--threads", args.threads,
        ]  # fmt: skip
        print("$", " ".join(cmd[1:]), file=sys.stderr)
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        print(markdown(json.loads((out / "deep_compression.json").read_text())))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
