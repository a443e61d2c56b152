"""train a registry network on Fashion-MNIST, one EPOCH_LR.pt checkpoint per epoch

See docs/networks.md for the recipes."""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.checkpoints import checkpoint_dir
from weightshare.outputs import check_output_dir, write_text_atomic
from weightshare.validation import check_int


@dataclass(frozen=True)
class TrainConfig:
    """Settings of ``--mode train``.

    Attributes:
        network: registry name.
        data_dir: Fashion-MNIST IDX directory (None: the Debian package's).
        cache_dir: root of the checkpoint cache; files go to ``<cache>/checkpoints/<network>/``.
        epochs: override of the recipe's epoch count (None keeps the documented recipe).
        threads: torch threads.
        log_file: optional directory for ``training.json``.
    """

    network: str
    data_dir: str | None
    cache_dir: Path
    epochs: int | None = None
    threads: int = 2
    log_file: Path | None = None

    def __post_init__(self) -> None:
        spec = get_network(self.network)
        if spec.recipe is None:
            raise UserError(
                f"{spec.name} is an ImageNet zoo network: --mode train does not train it"
            )
        if self.epochs is not None:
            check_int("--epochs", self.epochs, 1)
        check_int("--threads", self.threads, 1)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(config: TrainConfig) -> dict:
    """Train, print a per-epoch line, and return (and optionally write) a summary dict."""
    from dataclasses import replace

    from weightshare.networks.datasets import load_split
    from weightshare.networks.training import train

    if config.log_file is not None:
        check_output_dir("--log_file", config.log_file)
    spec = get_network(config.network)
    recipe = spec.recipe if config.epochs is None else replace(spec.recipe, epochs=config.epochs)
    train_split = load_split("train", config.data_dir)
    search = load_split("search", config.data_dir)
    out_dir = checkpoint_dir(config.cache_dir, spec.name)
    print(f"training {spec.name} ({spec.description}): {recipe}")
    logs = train(spec, train_split, search, out_dir, recipe=recipe, threads=config.threads)
    last = Path(logs[-1].checkpoint)
    summary = {
        "network": spec.name,
        "recipe": asdict(recipe),
        "epochs": [asdict(log) for log in logs],
        "checkpoint": str(last),
        "sha256": sha256(last),
        "accuracy_search": logs[-1].monitor_accuracy,
    }
    print(f"final checkpoint {last}  sha256 {summary['sha256']}")
    print(f"search accuracy {100 * logs[-1].monitor_accuracy:.2f} %")
    if config.log_file is not None:
        write_text_atomic(config.log_file / "training.json", json.dumps(summary, indent=2))
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` flags."""
    group = parser.add_argument_group("train")
    group.add_argument(
        "--epochs",
        type=int,
        default=None,
        metavar="N",
        help="override the recipe's epochs (default: the documented recipe)",
    )


def main(args: argparse.Namespace) -> int:
    """``--mode train`` from parsed flags."""
    from weightshare.networks.datasets import resolve_data_dir

    config = TrainConfig(
        args.network_dataset,
        args.data_dir,
        args.cache_dir,
        args.epochs,
        args.threads,
        args.log_file,
    )
    resolve_data_dir(args.data_dir)
    run(config)
    return 0
