"""Command line: parse flags (the seed's names kept) into a config, run one mode.

Each ``--mode`` lives in its own module under :mod:`weightshare.modes` and provides
``add_arguments(parser)`` (its own argument group; module import must stay light: no torch,
tensorflow or onnxruntime at module level) and ``main(args) -> int``. Flags shared by several
modes are defined here once. Every :class:`~weightshare.errors.UserError` ends as one line on
stderr and exit code 2, and so does a full disk met anywhere (:mod:`weightshare.outputs`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from weightshare.backends.registry import BACKEND_NAMES
from weightshare.errors import UserError
from weightshare.networks.registry import DEFAULT_NETWORK, NETWORKS, ZOO

# mode name -> module; the module's docstring's first line is its help
MODES = {
    "exploration": "weightshare.modes.exploration",
    "evaluate": "weightshare.modes.evaluate",
    "train": "weightshare.modes.train",
    "encode": "weightshare.modes.encode",
    "decode": "weightshare.modes.decode",
    "residual": "weightshare.modes.residual",
    "residual_decode": "weightshare.modes.residual_decode",
    "residual_eval": "weightshare.modes.residual_eval",
    "export": "weightshare.modes.export",
    "prune": "weightshare.modes.prune",
    "deep_compression": "weightshare.modes.deep_compression",
    "profile": "weightshare.modes.profile",
    "partial_update": "weightshare.modes.partial_update",
    "dashboard": "weightshare.modes.dashboard",
}
DEFAULT_MODE = "exploration"  # the seed's default

_EPILOG = (
    "networks (--network_dataset):\n"
    + "\n".join(
        f"  {name:34s} {spec.category:5s}  {spec.description}"
        for name, spec in (NETWORKS | ZOO).items()
    )
    + """

examples:
  python main.py --network_dataset lenet5_fashionmnist --log_file runs/lenet5 \\
      --dataset_scale 0.1 --with_local_optimization 1 --mode exploration \\
      --optimization two_step_optimization          # rerun the same command to resume
  python main.py --mode encode --log_file runs/lenet5   # write the compressed model file
  python main.py --mode train --network_dataset lenet5_fashionmnist
  python main.py --mode evaluate --network_dataset lenet5_fashionmnist --k 16 --log_file runs/l5
  python main.py --mode evaluate --k-per-layer k.json --granularity channel
"""
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (exit 2) instead of usage + message."""

    def error(self, message: str):
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _modules():
    return {name: importlib.import_module(path) for name, path in MODES.items()}


def build_parser() -> argparse.ArgumentParser:
    """The full parser; ``python main.py --help`` prints it."""
    modules = _modules()
    modes_help = "; ".join(
        f"{name}: {(mod.__doc__ or '').strip().splitlines()[0]}" for name, mod in modules.items()
    )
    p = _Parser(
        prog="main.py",
        description="weightshare: retraining-free weight sharing of CNNs "
        "(1-D k-means per layer: indices + codebook), its exploration and its codecs.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--mode",
        choices=tuple(MODES),
        default=DEFAULT_MODE,
        help=f"what to do (default: {DEFAULT_MODE}). {modes_help}",
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
    p.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="output file of modes that write one"
    )
    p.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        default=None,
        help="framework that runs the model (default: the model's own; registry PyTorch "
        "networks also run as ONNX, exported and cached, and Fashion-MNIST ones in Keras)",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="a model of your own instead of --network_dataset: .onnx, .keras/.h5, TorchScript, "
        "or a PyTorch state dict for --network_dataset's architecture",
    )
    p.add_argument(
        "--dataset",
        default=None,
        metavar="SPEC",
        help="data to score on: fashionmnist, imagefolder:DIR (one sub-folder per class) or "
        "npz:FILE (arrays x, y); default: the network's own (docs/backends.md)",
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="pretrained weights of an ImageNet zoo network (default: the torch hub / keras "
        "cache file)",
    )
    for module in modules.values():
        module.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python main.py``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        _check_common(args)
        return importlib.import_module(MODES[args.mode]).main(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a full disk anywhere, under whatever wrapper, is one line
        from weightshare.outputs import as_disk_full

        error = as_disk_full(exc, args.out or args.log_file)
        if error is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


def _check_common(args: argparse.Namespace) -> None:
    """Validate the shared flags before any heavy import; fill in derived defaults."""
    from weightshare.networks import get_network
    from weightshare.networks.checkpoints import default_cache_dir

    get_network(args.network_dataset)
    if getattr(args, "dataset", None) is not None:
        from weightshare.networks.inputs import parse_dataset

        parse_dataset(args.dataset)
    if args.threads < 1:
        raise UserError(f"--threads must be an int >= 1; got {args.threads}")
    if not 0.0 < args.dataset_scale <= 1.0:
        raise UserError(f"--dataset_scale must be a float in (0, 1]; got {args.dataset_scale!r}")
    args.cache_dir = args.cache_dir or default_cache_dir()
