"""Command line: parse flags (the seed's names kept) into a config, run one mode.

Every :class:`~weightshare.errors.UserError` ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from weightshare.errors import UserError
from weightshare.networks.registry import DEFAULT_NETWORK, NETWORKS

MODES = ("evaluate", "train")
DEFAULT_MODE = "evaluate"

_EPILOG = (
    """\
networks (--network_dataset):
"""
    + "\n".join(
        f"  {name:28s} {spec.category:5s}  {spec.description}" for name, spec in NETWORKS.items()
    )
    + """

examples:
  python main.py --mode train --network_dataset lenet5_fashionmnist
  python main.py --mode evaluate --network_dataset lenet5_fashionmnist --k 16 --log_file runs/lenet5
  python main.py --mode evaluate --k-per-layer k.json --granularity channel
"""
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (exit 2) instead of usage + message."""

    def error(self, message: str):
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; ``python main.py --help`` prints it."""
    p = _Parser(
        prog="main.py",
        description="weightshare: retraining-free weight sharing of CNNs "
        "(1-D k-means per layer: indices + codebook) and its evaluation.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--mode", choices=MODES, default=DEFAULT_MODE, help=f"what to do (default: {DEFAULT_MODE})"
    )
    p.add_argument(
        "--network_dataset",
        default=DEFAULT_NETWORK,
        metavar="NAME",
        help=f"registry network (default: {DEFAULT_NETWORK}); list below",
    )
    p.add_argument(
        "--log_file",
        type=Path,
        default=None,
        metavar="DIR",
        help="output directory for machine-readable results (created if missing)",
    )
    p.add_argument(
        "--dataset_scale",
        type=float,
        default=1.0,
        metavar="F",
        help="fraction in (0, 1] of the search split's images to score on "
        "(of the images, never of a batch; default 1.0)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="directory with the Fashion-MNIST IDX .gz files "
        "(default: /usr/share/datasets/fashion-mnist from dataset-fashion-mnist)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="state-dict file of trained weights (default: the committed baseline, "
        "else the newest checkpoint of --mode train)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="cache root for checkpoints (default: $WEIGHTSHARE_CACHE or ~/.cache/weightshare)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=min(2, os.cpu_count() or 1),
        metavar="N",
        help="torch threads for training and evaluation (default: min(2, cores))",
    )
    ev = p.add_argument_group("evaluate")
    ev.add_argument(
        "--k",
        type=int,
        default=None,
        metavar="K",
        help="shared values per layer, the same for every clusterable layer, in [1, 65536]",
    )
    ev.add_argument(
        "--k-per-layer",
        default=None,
        metavar="FILE.json",
        help='JSON object {"layer name": k}; unnamed layers stay fp32',
    )
    ev.add_argument(
        "--granularity",
        choices=("layer", "channel"),
        default="layer",
        help="one codebook per layer (the paper's) or per output channel",
    )
    ev.add_argument(
        "--init",
        choices=("best", "linear", "quantile", "kmeans++"),
        default="best",
        help="k-means initialisation; 'best' keeps the lowest inertia of all, "
        "the paper's 'linear' included (default: best)",
    )
    tr = p.add_argument_group("train")
    tr.add_argument(
        "--epochs",
        type=int,
        default=None,
        metavar="N",
        help="override the recipe's epochs (default: the documented recipe)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python main.py``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from weightshare.networks import get_network
    from weightshare.networks.checkpoints import default_cache_dir
    from weightshare.networks.datasets import resolve_data_dir

    get_network(args.network_dataset)  # unknown names fail before any heavy import
    resolve_data_dir(args.data_dir)
    if args.threads < 1:
        raise UserError(f"--threads must be an int >= 1; got {args.threads}")
    cache_dir = args.cache_dir or default_cache_dir()
    if args.mode == "train":
        from weightshare.modes import train

        if args.epochs is not None and args.epochs < 1:
            raise UserError(f"--epochs must be an int >= 1; got {args.epochs}")
        train.run(
            train.TrainConfig(
                args.network_dataset,
                args.data_dir,
                cache_dir,
                args.epochs,
                args.threads,
                args.log_file,
            )
        )
        return 0
    from weightshare.modes import evaluate

    k_per_layer = None if args.k_per_layer is None else evaluate.read_k_per_layer(args.k_per_layer)
    k = 16 if args.k is None and k_per_layer is None else args.k
    evaluate.run(
        evaluate.EvaluateConfig(
            network=args.network_dataset,
            k=k,
            k_per_layer=k_per_layer,
            granularity=args.granularity,
            init=args.init,
            dataset_scale=args.dataset_scale,
            data_dir=args.data_dir,
            checkpoint=args.checkpoint,
            cache_dir=cache_dir,
            log_file=args.log_file,
            threads=args.threads,
        )
    )
    return 0
