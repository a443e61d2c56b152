"""Promote trained checkpoints to committed baselines, and re-measure the committed ones.

    python bench/baselines.py --promote NAME [NAME ...]   # copy the newest `--mode train`
                                                           # checkpoint to baselines/NAME.pt
    python bench/baselines.py                             # verify sha256 + accuracies, print table

``baselines/baselines.json`` records, per network, the command that trained it, the file's
sha256 and its top-1 accuracy on the search (5k), holdout (5k) and whole test (10k) images.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from weightshare.backends.pytorch import PyTorchBackend  # noqa: E402
from weightshare.modes.train import sha256  # noqa: E402
from weightshare.networks import NETWORKS, get_network  # noqa: E402
from weightshare.networks.checkpoints import (  # noqa: E402
    BASELINE_DIR,
    checkpoint_dir,
    default_cache_dir,
    latest_checkpoint,
    load_into,
)
from weightshare.networks.datasets import load_split  # noqa: E402

MANIFEST = BASELINE_DIR / "baselines.json"


def measure(name: str, path: Path, command: str | None = None) -> dict:
    """sha256 and top-1 on search / holdout / the whole test set of one checkpoint."""
    spec = get_network(name)
    backend = PyTorchBackend(load_into(spec.build(), path), spec.input_size, threads=2)
    search = backend.evaluate(load_split("search"))
    holdout = backend.evaluate(load_split("holdout"))
    correct = int(search.correct.sum()) + int(holdout.correct.sum())
    return {
        "file": f"baselines/{name}.pt",
        "command": command or f"python main.py --mode train --network_dataset {name}",
        "recipe_epochs": spec.recipe.epochs,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "accuracy_search": search.top1,
        "accuracy_holdout": holdout.top1,
        "accuracy_test": correct / (search.n_images + holdout.n_images),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--promote", nargs="*", default=[], metavar="NAME")
    parser.add_argument(
        "--train-threads",
        type=int,
        default=2,
        help="the --threads the promoted checkpoints were trained with",
    )
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    for name in args.promote:
        source = latest_checkpoint(checkpoint_dir(default_cache_dir(), name))
        if source is None:
            sys.exit(f"error: no checkpoint of {name}; run --mode train first")
        shutil.copyfile(source, BASELINE_DIR / f"{name}.pt")
        command = f"python main.py --mode train --network_dataset {name}"
        if args.train_threads != 2:
            command += f" --threads {args.train_threads}"
        manifest[name] = measure(name, BASELINE_DIR / f"{name}.pt", command)
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print("| network | command | sha256 | KiB | search | holdout | test (10k) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    failures = 0
    for name in NETWORKS:
        if name not in manifest:
            continue
        now = measure(name, BASELINE_DIR / f"{name}.pt", manifest[name]["command"])
        ok = all(
            now[k] == manifest[name][k] for k in ("sha256", "accuracy_search", "accuracy_holdout")
        )
        failures += not ok
        print(
            f"| {name} | `{now['command']}` | `{now['sha256'][:16]}` | {now['bytes'] / 1024:.0f} "
            f"| {100 * now['accuracy_search']:.2f} | {100 * now['accuracy_holdout']:.2f} "
            f"| {100 * now['accuracy_test']:.2f} |" + ("" if ok else " MISMATCH")
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
