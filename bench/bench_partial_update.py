"""Deep partial updating: the seed's table (average accuracy difference to full updating per
method) plus what the seed never measured, the bytes of every round's update file.

For one network, full updating (FU) runs once and every partial method once per updating ratio
k, all over the same rounds (same data order, same shared init, same minibatch seeds). Averages
are over the update rounds (round >= 1; round 0 is the initial deployment, a full file shared by
all methods but pruning). Accuracy is the holdout top-1 of the model the device rebuilt from the
files, round by round (no running maximum). Bytes: the files' sizes, a skipped round counting 0,
as a share of the dense fp32 model and of FU's average update file (a full update coded with the
residual checkpoint codec, lossless).

    python bench/bench_partial_update.py --network lenet300_fashionmnist --ratios 0.005,0.01 \
        [--methods dpu,gcpu,rpu,pruning] [--rounds 10] [--initial 1000] [--per-round 1000] \
        [--epochs 3] [--batch 64] [--out DIR]
    python bench/bench_partial_update.py --summarize DIR/k0.01/partial_update.json ...
    python bench/bench_partial_update.py --recode DIR/k0.01
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from weightshare.networks import get_network
from weightshare.networks.datasets import load_split
from weightshare.updating.driver import (
    ROUND_BATCH,
    UpdateSettings,
    round_recipe,
    run_method,
    settings_json,
)
from weightshare.updating.report import plot, write_json
from weightshare.updating.schedule import RoundSchedule


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def table(records: list[dict], dense: int) -> tuple[dict, list[dict]]:
    """FU's averages and one row per (k, method) from ``partial_update.json`` round records
    (dicts; FU's rows carry ``budget`` of its own run and are matched by method name)."""
    fu = [r for r in records if r["method"] == "fu" and r["round"] >= 1]
    fu_acc = _mean(r["accuracy_holdout"] for r in fu)
    fu_file = _mean(r["bytes_sent"] for r in fu if not r["skipped"])
    rows = []
    for key in dict.fromkeys((r["k"], r["method"]) for r in records if r["method"] != "fu"):
        upd = [r for r in records if (r["k"], r["method"]) == key and r["round"] >= 1]
        mean_bytes = _mean(r["bytes_sent"] for r in upd)
        rows.append(
            {
                "k": key[0],
                "method": key[1],
                "mean_holdout": _mean(r["accuracy_holdout"] for r in upd),
                "diff_to_fu": _mean(r["accuracy_holdout"] for r in upd) - fu_acc,
                "mean_bytes": mean_bytes,
                "share_of_dense": mean_bytes / dense,
                "share_of_fu_file": mean_bytes / fu_file,
                "mean_sent_file": _mean(r["bytes_sent"] for r in upd if not r["skipped"]),
                "max_bytes": max(r["bytes_sent"] for r in upd),
                "skipped": sum(r["skipped"] for r in upd),
                "reinit": sum(r["reinit"] for r in upd),
            }
        )
    return {"fu_mean_holdout": fu_acc, "fu_mean_file_bytes": fu_file, "dense_bytes": dense}, rows


def print_table(network: str, head: dict, rows: list[dict]) -> None:
    """The markdown table of docs/benchmarks.md."""
    print(
        f"\n{network}: FU mean holdout {100 * head['fu_mean_holdout']:.2f} %, FU file "
        f"{head['fu_mean_file_bytes']:.0f} B, dense fp32 {head['dense_bytes']} B"
    )
    print(
        "| k | method | mean holdout % | diff to FU (points) | bytes/round | of dense fp32 "
        "| of FU file | per sent file (of dense) | skipped | reinit |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['k']:g} | {row['method']} | {100 * row['mean_holdout']:.2f} | "
            f"{100 * row['diff_to_fu']:+.2f} | {row['mean_bytes']:.0f} | "
            f"{100 * row['share_of_dense']:.3f} % | {100 * row['share_of_fu_file']:.2f} % | "
            f"{row['mean_sent_file']:.0f} "
            f"({100 * row['mean_sent_file'] / head['dense_bytes']:.3f} %)"
            f" | {row['skipped']} | {row['reinit']} |"
        )


def summarize(paths: list[Path]) -> int:
    """``--summarize``: the table from finished ``partial_update.json`` files (one per k)."""
    records, network, dense = [], None, None
    for i, path in enumerate(paths):
        document = json.loads(path.read_text())
        k = document["settings"]["ratio"]
        network = document["network"]
        for r in document["rounds"]:
            if r["method"] != "fu" or i == 0:  # FU is the same run in every file
                records.append({**r, "k": k})
            dense = r["dense_bytes"]
    head, rows = table(records, dense)
    print_table(network, head, rows)
    return 0


def recode(run_dir: Path) -> int:
    """``--recode``: rebuild a finished lossless run from its files and code every sent update
    again on the checkpoint codec's 16-bit grid (same models, so the byte difference is the
    value coding alone; a real grid16 run deploys the rounded models)."""
    from weightshare.codecs.update import encode_update
    from weightshare.updating.replay import read_run, replay

    document = read_run(run_dir)
    devices = replay(run_dir)
    print("| method | rounds | lossless bytes/file | grid16 bytes/file | grid16 / lossless |")
    print("|---|---:|---:|---:|---:|")
    for method, states in devices.items():
        rows = [
            r for r in document["rounds"]
            if r["method"] == method and r["round"] >= 1 and not r["skipped"]
        ]  # fmt: skip
        exact, grid = [], []
        for r in rows:
            if r["base"] != "deployed":
                continue
            new, old = states[r["round"]], states[r["round"] - 1]
            exact.append(r["bytes_sent"])
            grid.append(len(encode_update(new, old, coding="grid16")[0]))
        print(
            f"| {method} | {len(exact)} | {_mean(exact):.0f} | {_mean(grid):.0f} | "
            f"{100 * _mean(grid) / _mean(exact):.1f} % |"
        )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default="lenet300_fashionmnist")
    p.add_argument("--ratios", default="0.005,0.01")
    p.add_argument("--methods", default="dpu,gcpu,rpu,pruning")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--initial", type=int, default=1000)
    p.add_argument("--per-round", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=ROUND_BATCH)
    p.add_argument("--lam", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_partial_update"))
    p.add_argument(
        "--summarize",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="only print the table of finished runs' partial_update.json files",
    )
    p.add_argument(
        "--recode",
        type=Path,
        default=None,
        metavar="DIR",
        help="code a finished run's sent updates again on the 16-bit grid and compare bytes",
    )
    args = p.parse_args()
    if args.recode:
        return recode(args.recode)
    if args.summarize:
        return summarize(args.summarize)
    torch.set_num_threads(1)
    spec = get_network(args.network)
    splits = [load_split(name) for name in ("train", "search", "holdout")]
    recipe = replace(round_recipe(spec, args.epochs, seed=args.seed), batch_size=args.batch)
    base = UpdateSettings(
        ratio=1.0,
        lam=args.lam,
        schedule=RoundSchedule(args.initial, args.per_round, args.rounds, args.seed),
        recipe=recipe,
        seed=args.seed,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    fu = run_method(spec, "fu", base, *splits, args.out / "fu")
    records = [{**asdict(r), "k": 1.0} for r in fu]
    for ratio in (float(k) for k in args.ratios.split(",")):
        settings = replace(base, ratio=ratio)
        ours = list(fu)
        for method in args.methods.split(","):
            rows = run_method(spec, method, settings, *splits, args.out / f"k{ratio:g}")
            ours += rows
            records += [{**asdict(r), "k": ratio} for r in rows]
        header = {"network": spec.name, "settings": settings_json(settings)}
        shutil.copytree(  # FU's files beside the others, so the k directory replays alone
            args.out / "fu" / "updates" / "fu",
            args.out / f"k{ratio:g}" / "updates" / "fu",
            dirs_exist_ok=True,
        )
        write_json(args.out / f"k{ratio:g}" / "partial_update.json", header, ours)
        plot(args.out / f"k{ratio:g}" / "partial_update.png", ours, f"{spec.name}, k={ratio:g}")
    head, rows = table(records, fu[0].dense_bytes)
    summary = {
        "network": spec.name,
        "settings": asdict(base.schedule) | {"epochs": args.epochs, "batch": args.batch},
        **head,
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_table(spec.name, head, rows)
    print(f"({summary['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
