"""deep partial updating: rounds of new data, each sending a small update file to the device

See docs/updating.md."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.validation import check_choice, check_float, check_int

METHOD_CHOICES = ("dpu", "gcpu", "lcpu", "rpu", "fu", "pruning")  # updating.methods.METHOD_NAMES
UPDATE_CODINGS = ("lossless", "grid16")


@dataclass(frozen=True)
class PartialUpdateConfig:
    """Settings of ``--mode partial_update`` (docs/updating.md).

    Attributes:
        network: a trainable Fashion-MNIST registry network (``--network_dataset``).
        methods: distinct names of ``METHOD_CHOICES``, run in order.
        log_dir: directory for the update files, ``partial_update.json`` and its plot.
        updating_ratio: share k of conv/FC weights one round may change, in (0, 1].
        lam: DPU's weight of the global contribution, in [0, 1].
        initial_samples, samples_per_round, rounds: the data schedule (checked against the
            training split's size when it is loaded).
        round_epochs: epochs per training step, >= 1.
        round_lr: peak learning rate of a round's one-cycle SGD schedule, > 0 (None: the
            network's recipe, 0.05 for the LeNets).
        update_coding: ``lossless`` or ``grid16``.
        reinit: re-initialise from the shared seed when the data doubles.
        seed: seeds the schedule, the training and the random selections.
        data_dir: Fashion-MNIST IDX directory (None: the Debian package's).
        threads: torch threads, >= 1.
    """

    network: str
    methods: tuple[str, ...]
    log_dir: Path | None
    updating_ratio: float = 0.01
    lam: float = 0.5
    initial_samples: int = 1000
    samples_per_round: int = 1000
    rounds: int = 10
    round_epochs: int = 3
    round_lr: float | None = None
    update_coding: str = "lossless"
    reinit: bool = True
    seed: int = 0
    data_dir: str | None = None
    threads: int = 2

    def __post_init__(self) -> None:
        if (
            not self.methods
            or any(m not in METHOD_CHOICES for m in self.methods)
            or len(set(self.methods)) != len(self.methods)
        ):
            raise UserError(
                f"--method must be a comma list of distinct {METHOD_CHOICES} for --mode "
                f"partial_update; got {','.join(self.methods)!r}"
            )
        check_float("--updating-ratio", self.updating_ratio, 0, 1, low_open=True)
        check_float("--lambda", self.lam, 0, 1)
        check_int("--round-epochs", self.round_epochs, 1)
        if self.round_lr is not None:
            check_float("--round-lr", self.round_lr, 0, low_open=True)
        check_choice("--update-coding", self.update_coding, UPDATE_CODINGS)
        check_int("--threads", self.threads, 1)
        if self.log_dir is None:
            raise UserError("--mode partial_update needs --log_file DIR for its update files")
        spec = get_network(self.network)
        if spec.recipe is None or spec.framework != "pytorch":
            raise UserError(
                f"--mode partial_update trains the network: --network_dataset must be a "
                f"trainable Fashion-MNIST registry network; got {spec.name}"
            )


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
        default=None,
        metavar="LR",
        help="peak learning rate of a round's one-cycle SGD schedule (default: the "
        "network's recipe, 0.05 for the LeNets)",
    )
    group.add_argument(
        "--update-coding",
        choices=UPDATE_CODINGS,
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
    config = PartialUpdateConfig(
        network=args.network_dataset,
        methods=tuple(m.strip() for m in (args.method or "dpu").split(",")),
        log_dir=args.log_file,
        updating_ratio=args.updating_ratio,
        lam=args.lam,
        initial_samples=args.initial_samples,
        samples_per_round=args.samples_per_round,
        rounds=args.rounds,
        round_epochs=args.round_epochs,
        round_lr=args.round_lr,
        update_coding=args.update_coding,
        reinit=not args.no_reinit,
        seed=args.seed,
        data_dir=args.data_dir,
        threads=args.threads,
    )
    run(config)
    return 0


def run(config: PartialUpdateConfig) -> dict:
    """Run every method's rounds; write the update files, ``partial_update.json`` and its plot
    into ``config.log_dir``; print the summary table and return ``partial_update.json``'s
    header."""
    from weightshare.networks.datasets import load_split, resolve_data_dir
    from weightshare.outputs import check_output_dir

    check_output_dir("--log_file", config.log_dir)
    spec = get_network(config.network)
    methods = config.methods
    resolve_data_dir(config.data_dir)

    import torch

    from weightshare.updating.driver import (
        UpdateSettings,
        round_recipe,
        run_method,
        settings_json,
    )
    from weightshare.updating.report import plot, summary, write_json
    from weightshare.updating.schedule import RoundSchedule

    train = load_split("train", config.data_dir)
    schedule = RoundSchedule(
        config.initial_samples, config.samples_per_round, config.rounds, config.seed
    ).check(len(train))
    settings = UpdateSettings(
        ratio=config.updating_ratio,
        lam=config.lam,
        schedule=schedule,
        recipe=round_recipe(spec, config.round_epochs, config.round_lr, config.seed),
        coding=config.update_coding,
        reinit=config.reinit,
        seed=config.seed,
    )
    torch.set_num_threads(config.threads)
    search = load_split("search", config.data_dir)
    holdout = load_split("holdout", config.data_dir)
    out_dir: Path = config.log_dir
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
    return header
