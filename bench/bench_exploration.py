"""Search strategies side by side on one network, same split and target, several seeds:
two_step_optimization vs plain NSGA-II and TPE given two-step's number of evaluations as their
trial budget, and optionally the seed's algorithm (``paper``, heavy: ~1,600 step-1 evaluations
on ResNet-20).

    python bench/bench_exploration.py --network lenet5_fashionmnist --dataset_scale 0.1 \
        [--seeds 0,1,2] [--paper] [--paper-trials 10000] [--out runs/bench] [--threads 1] \
        [--plot docs/img/convergence_lenet5_fashionmnist.png] [--confirm-margin Z] \
        [--compare two_step_optimization,nsga2,tpe]

Each run is `python main.py --mode exploration` in-process (`--workers 0`, so the figure is the
algorithm's, not Ray's) into its own directory (a rerun reads the finished runs' results.json
and resumes the others). ``--seed`` seeds the k-means
and the samplers (the search images are the split's first fraction whatever the seed). Prints a
markdown table from each results.json (evaluations, images scored and the share early stopping
saved, wall seconds, best fixed-length and coded ratios, whole-search-split and holdout
accuracy, holdout pass), then the median and the range over the seeds per strategy.

The convergence plot: for each run, the best coded ratio among the points feasible on the
search images so far that also pass the target on the holdout, against the evaluations made
(points are rescored on the holdout here, in evaluation order, only when they would raise the
curve); per strategy a thin line per seed and a thick one for the median over the seeds (a run
that ended keeps its best to the end of the longest one). A last table gives each run's best
holdout-passing coded ratio (the curve's end).

``--confirm-margin Z`` is passed to every run (results under ``NETWORK@SCALE+zZ``);
``--compare`` names the strategies run (two-step always runs: it sets the others' budget).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMPARED = ("two_step_optimization", "nsga2", "tpe")


def explore(network: str, scale: float, optimization: str, out: Path, args, *extra: str) -> dict:
    """One exploration's results.json: a finished run in ``out`` is read as it is (rerunning
    it would add the resume's seconds to its wall time), else the run is made or resumed."""
    done = out / "results.json"
    if done.exists() and json.loads(done.read_text())["status"] != "interrupted":
        return json.loads(done.read_text())
    cmd = [
        sys.executable,
        "main.py",
        "--mode",
        "exploration",
        "--network_dataset",
        network,
        "--dataset_scale",
        str(scale),
        "--optimization",
        optimization,
        "--workers",
        "0",
        "--threads",
        str(args.threads),
        "--log_file",
        str(out),
        *extra,
        *(("--confirm-margin", f"{args.confirm_margin:g}") if args.confirm_margin else ()),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 3):
        sys.exit(f"{optimization} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    print(f"ran: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    return json.loads((out / "results.json").read_text())


def figures(doc: dict) -> dict:
    best = doc["best"] or {}
    scored, whole = doc.get("images_scored", 0), doc.get("images_without_early_stopping", 0)
    return {
        "evaluations": doc["evaluations"],
        "images": scored,
        "saved": 100 * (1 - scored / whole) if whole else float("nan"),
        "wall": doc["wall_seconds"],
        "fixed": best.get("compression_ratio_fixed", float("nan")),
        "coded": best.get("compression_ratio_coded", float("nan")),
        "full": 100 * best.get("accuracy_search_full", float("nan")),
        "holdout": 100 * best.get("accuracy_holdout", float("nan")),
        "passes": best.get("passes_holdout", False),
    }


def row(name: str, f: dict) -> str:
    return (
        f"| {name} | {f['evaluations']} | {f['images']:,} ({f['saved']:.1f} % saved) | "
        f"{f['wall']:.0f} | {f['fixed']:.2f} | {f['coded']:.2f} | {f['full']:.2f} | "
        f"{f['holdout']:.2f} | {f['passes']} |"
    )


def summary(name: str, runs: list[dict]) -> str:
    def med(key: str, fmt: str) -> str:
        values = [r[key] for r in runs]
        return (
            f"{format(statistics.median(values), fmt)} "
            f"({format(min(values), fmt)}-{format(max(values), fmt)})"
        )

    passes = sum(bool(r["passes"]) for r in runs)
    return (
        f"| **{name}, median (range)** | {med('evaluations', '.0f')} | {med('images', ',.0f')} | "
        f"{med('wall', '.0f')} | {med('fixed', '.2f')} | {med('coded', '.2f')} | "
        f"{med('full', '.2f')} | {med('holdout', '.2f')} | {passes} of {len(runs)} |"
    )


def convergence(run_dir: Path, doc: dict, evaluator) -> list[tuple[int, float]]:
    """(evaluations made, best holdout-passing coded ratio so far) at each step of the curve."""
    from weightshare.dse.space import Candidate

    with (run_dir / "trials.csv").open() as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["trial"]))
    holdout_target = doc["accuracy_ratio"] * doc["baseline"]["accuracy_holdout"]
    best, curve, n, verdict = 0.0, [], 0, {}
    for r in rows:
        if r["reused"] == "True":
            continue
        n += 1
        ratio = float(r["compression_ratio_coded"])
        if r["split"] != "search" or r["phase"] == "baseline" or ratio <= best:
            continue
        if float(r["accuracy"]) < doc["accuracy_target"]:
            continue
        if r["k"] not in verdict:
            held = evaluator.evaluate(Candidate.parse(r["k"]), "holdout")
            verdict[r["k"]] = held.accuracy >= holdout_target
        if verdict[r["k"]]:
            best = ratio
            curve.append((n, best))
    curve.append((n, best))
    return curve


def plot(curves: dict[str, list[list[tuple[int, float]]]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (name, runs), color in zip(curves.items(), ("C0", "C1", "C2", "C3"), strict=False):
        end = max(c[-1][0] for c in runs)
        xs = np.arange(1, end + 1)
        ys = []
        for c in runs:
            steps = np.zeros(end)
            for n, best in c:
                steps[n - 1 :] = best  # a run that stopped keeps its best to the end
            ys.append(steps)
            ax.step(xs[: c[-1][0]], steps[: c[-1][0]], where="post", color=color, lw=0.6, alpha=0.4)
        ax.step(xs, np.median(np.array(ys), axis=0), where="post", color=color, lw=2, label=name)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best coded ratio passing the holdout")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--network", default="lenet5_fashionmnist")
    parser.add_argument("--dataset_scale", type=float, default=0.1)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--paper", action="store_true", help="run the seed's algorithm too")
    parser.add_argument(
        "--paper-trials",
        type=int,
        default=10_000,
        help="NSGA-II trials of the paper's algorithm (its own: 100 x 100)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", type=Path, help="convergence PNG (default: none)")
    parser.add_argument(
        "--confirm-margin", type=float, default=0.0, help="main.py's --confirm-margin (default 0)"
    )
    parser.add_argument("--compare", default=",".join(COMPARED), help="strategies run")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    compared = [n for n in COMPARED if n == COMPARED[0] or n in args.compare.split(",")]
    names = [*compared, "paper"] if args.paper else compared
    margin = f"+z{args.confirm_margin:g}" if args.confirm_margin else ""
    base = args.out / f"{args.network}@{args.dataset_scale:g}{margin}"
    docs: dict[str, dict[int, dict]] = {name: {} for name in names}
    for seed in seeds:
        seed_flag = ("--seed", str(seed))
        first = explore(
            args.network,
            args.dataset_scale,
            "two_step_optimization",
            base / f"seed{seed}" / "two_step",
            args,
            *seed_flag,
        )
        docs["two_step_optimization"][seed] = first
        budget = str(first["evaluations"])
        for name in compared[1:]:
            out = base / f"seed{seed}" / name
            docs[name][seed] = explore(
                args.network, args.dataset_scale, name, out, args, *seed_flag, "--n-trials", budget
            )
        if args.paper:
            docs["paper"][seed] = explore(
                args.network,
                args.dataset_scale,
                "paper",
                base / f"seed{seed}" / "paper",
                args,
                *seed_flag,
                "--n-trials",
                str(args.paper_trials),
            )
    any_doc = docs["two_step_optimization"][seeds[0]]
    print(
        f"{args.network}, dataset_scale {args.dataset_scale:g}, target "
        f"{any_doc['accuracy_ratio']:g} x fp32, seeds {args.seeds}; nsga2 and tpe get "
        "two-step's evaluations of the same seed as their trial budget"
    )
    print(
        "| algorithm, seed | evaluations | images scored | wall s | best ratio fixed | "
        "best ratio coded | full search % | holdout % | passes holdout |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in names:
        runs = [figures(docs[name][s]) for s in seeds]
        for seed, f in zip(seeds, runs, strict=True):
            print(row(f"{name}, {seed}", f))
        print(summary(name, runs))
    if args.plot:
        from weightshare.modes.loading import EvaluatorFactory
        from weightshare.networks.checkpoints import BASELINE_DIR

        curves: dict[str, list] = {name: [] for name in names}
        for seed in seeds:
            evaluator = EvaluatorFactory(
                args.network,
                str(BASELINE_DIR / f"{args.network}.pt"),
                None,
                args.dataset_scale,
                args.threads,
                seed=seed,
            )()
            for name in names:
                run_dir = base / f"seed{seed}" / ("two_step" if name == COMPARED[0] else name)
                curves[name].append(convergence(run_dir, docs[name][seed], evaluator))
        title = (
            f"{args.network}, dataset_scale {args.dataset_scale:g}: median of seeds {args.seeds}"
        )
        plot(curves, title, args.plot)
        print(f"wrote {args.plot}")
        print()
        print("Best coded ratio among the points feasible on the search images that pass the")
        print("holdout (the convergence curves' last value), per seed:")
        print()
        print(f"| algorithm | {' | '.join(f'seed {s}' for s in seeds)} | median | evaluations |")
        print(f"| --- |{' ---: |' * len(seeds)} ---: | ---: |")
        for name in names:
            last = [c[-1] for c in curves[name]]
            cells = " | ".join(f"{best:.2f}" for _, best in last)
            med = statistics.median(best for _, best in last)
            evals = "/".join(str(n) for n, _ in last)
            print(f"| {name} | {cells} | {med:.2f} | {evals} |")


if __name__ == "__main__":
    main()
