"""deep partial updating: rounds of new data, each sending a small update file to the device

See docs/updating.md."""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

from weightshare.errors import UserError

METHOD_CHOICES = ("dpu", "gcpu", "lcpu", "rpu", "fu", "pruning")  # updating.methods.METHOD_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``partial_update`` flags (``--method`` and ``--seed`` are shared with other modes)."""
    group = parser.add_argument_group(
        "partial_update (--method dpu|gcpu|lcpu|rpu|fu|pruning[,...], --seed: shared init, "
        "arrival order and minibatches)"
    )
    group.add_argument(
        "--updating-ratio",
        type=float,
        default=0.01,
        metavar="K",
        help="share k of conv/FC weights one round may change (default 0.01)",
    )
    group.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=0.5,
        metavar="L",
        help="DPU's mix of squared displacement (L) and trajectory "
        "contribution (1 - L) (default 0.5)",
    )
    group.add_argument(
        "--initial-samples",
        type=int,
        default=1000,
        metavar="N",
        help="training images before the first deployment (default 1000)",
    )
    group.add_argument(
        "--samples-per-round",
        type=int,
        default=1000,
        metavar="N",
        help="training images added each later round (default 1000)",
    )
    group.add_argument(
        "--rounds",
        type=int,
        default=10,
        metavar="R",
        help="rounds, the first deployment included (default 10)",
    )
    group.add_argument(
        "--no-reinit",
        action="store_true",
        help="never re-initialise from the shared seed when the data doubles",
    )
    group.add_argument(
        "--round-epochs",
        type=int,
        default=3,
        metavar="E",
        help="epochs per training step; every method spends 2E per round (default 3)",
    )
    group.add_argument(
        "--round-lr",
        type=float,
        default=5e-3,
        metavar="LR",
        help="Adam learning rate of a round (default 5e-3)",
    )
    group.add_argument(
        "--update-coding",
        choices=("lossless", "grid16"),
        default="lossless",
        help="update values: lossless residuals, or on the checkpoint codec's "
        "16-bit residual grid (error <= 2^-16) (default lossless)",
    )
    group.add_argument(
        "--replay",
        type=Path,
        default=None,
        metavar="DIR",
        help="rebuild every round's device model of a finished run from its "
        "update files and check them against the run's record",
    )


def _methods(text: str | None) -> tuple[str, ...]:
    names = tuple(m.strip() for m in (text or "dpu").split(","))
    bad = [m for m in names if m not in METHOD_CHOICES]
    if bad or len(set(names)) != len(names):
        raise UserError(
            f"--method must be a comma list of distinct {METHOD_CHOICES} for --mode "
            f"partial_update; got {text!r}"
        )
    return names


def _check(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.updating_ratio) and 0 < args.updating_ratio <= 1):
        raise UserError(f"--updating-ratio must be a float in (0, 1]; got {args.updating_ratio}")
    if not (math.isfinite(args.lam) and 0 <= args.lam <= 1):
        raise UserError(f"--lambda must be a float in [0, 1]; got {args.lam}")
    if args.round_epochs < 1:
        raise UserError(f"--round-epochs must be an int >= 1; got {args.round_epochs}")
    if args.round_lr is not None and not (math.isfinite(args.round_lr) and args.round_lr > 0):
        raise UserError(f"--round-lr must be a float > 0; got {args.round_lr}")
    if args.log_file is None:
        raise UserError("--mode partial_update needs --log_file DIR for its update files")
    from weightshare.outputs import check_output_dir

    check_output_dir("--log_file", args.log_file)


def _replay(run_dir: Path) -> int:
    from weightshare.updating.replay import replay

    devices = replay(run_dir)
    for method, states in devices.items():
        print(
            f"{method}: {len(states)} rounds rebuilt from the update files, every one equal "
            "to the server's record"
        )
    return 0


def main(args: argparse.Namespace) -> int:
    """``--mode partial_update`` from parsed flags."""
    if args.replay is not None:
        return _replay(args.replay)
    methods = _methods(args.method)
    _check(args)
    from weightshare.networks import get_network
    from weightshare.networks.datasets import load_split, resolve_data_dir

    spec = get_network(args.network_dataset)
    if spec.recipe is None or spec.framework != "pytorch":
        raise UserError(
            f"--mode partial_update trains the network: --network_dataset must be a trainable "
            f"Fashion-MNIST registry network; got {spec.name}"
        )
    resolve_data_dir(args.data_dir)

    import torch

    from weightshare.updating.driver import UpdateSettings, run_method, settings_json
    from weightshare.updating.report import plot, summary, write_json
    from weightshare.updating.schedule import RoundSchedule

    train = load_split("train", args.data_dir)
    schedule = RoundSchedule(
        args.initial_samples, args.samples_per_round, args.rounds, args.seed
    ).check(len(train))
    settings = UpdateSettings(
        ratio=args.updating_ratio,
        lam=args.lam,
        schedule=schedule,
        recipe=replace(
            spec.recipe,
            epochs=args.round_epochs,
            lr=spec.recipe.lr if args.round_lr is None else args.round_lr,
            augment=False,
            seed=args.seed,
        ),
        coding=args.update_coding,
        reinit=not args.no_reinit,
        seed=args.seed,
    )
    torch.set_num_threads(args.threads)
    search = load_split("search", args.data_dir)
    holdout = load_split("holdout", args.data_dir)
    out_dir: Path = args.log_file
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for method in methods:
        records += run_method(spec, method, settings, train, search, holdout, out_dir)
    header = {"network": spec.name, "settings": settings_json(settings), "methods": methods}
    header["summary"] = summary(records)
    write_json(out_dir / "partial_update.json", header, records)
    plot(
        out_dir / "partial_update.png",
        records,
        f"{spec.name}, k = {settings.ratio:g}, {settings.coding}",
    )
    print(
        f"{'method':8s} {'holdout %':>9s} {'search %':>9s} {'bytes/round':>12s} "
        f"{'of dense':>9s} {'skipped':>7s}"
    )
    for method, row in header["summary"].items():
        print(
            f"{method:8s} {100 * row['mean_accuracy_holdout']:9.2f} "
            f"{100 * row['mean_accuracy_search']:9.2f} {row['mean_bytes']:12.0f} "
            f"{100 * row['mean_share_of_dense']:8.3f}% {row['skipped_rounds']:7d}"
        )
    print(f"-> {out_dir / 'partial_update.json'}, {out_dir / 'partial_update.png'}")
    return 0
