"""parameters, MACs (dense, sparse, structurally pruned) and CPU latency per layer

See docs/pruning.md. Profiles the network as built (the dense reference, from the committed
baseline) and, with ``--checkpoint``, a pruned checkpoint of it (magnitude zeros or an FPGM
architecture); writes ``profile.json`` into ``--log_file`` when given."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.validation import check_int


@dataclass(frozen=True)
class ProfileConfig:
    """Settings of ``--mode profile``.

    Attributes:
        network: a Fashion-MNIST PyTorch registry network (``--network_dataset``).
        checkpoint: a pruned checkpoint of it to profile too, or None.
        cache_dir: checkpoint cache root (the dense reference is looked up there).
        repeats: timed batch-1 passes per model, in [1, 10000].
        threads: torch threads, >= 1.
        log_file: directory for ``profile.json``, or None.
    """

    network: str
    checkpoint: str | None = None
    cache_dir: Path | None = None
    repeats: int = 20
    threads: int = 2
    log_file: Path | None = None

    def __post_init__(self) -> None:
        spec = get_network(self.network)
        if spec.framework != "pytorch" or spec.recipe is None:
            raise UserError(
                f"--mode profile supports the Fashion-MNIST PyTorch networks; got {spec.name}"
            )
        check_int("--repeats", self.repeats, 1, 10000)
        check_int("--threads", self.threads, 1)


def _profile(model, input_shape, repeats: int) -> dict:
    from weightshare.pruning.costs import as_dicts, latency_ms, layer_costs, totals

    rows = layer_costs(model, input_shape)
    return {
        "layers": as_dicts(rows),
        "total": totals(rows),
        "latency_ms": {
            "batch_1": latency_ms(model, input_shape, 1, repeats=repeats),
            "batch_256": latency_ms(model, input_shape, 256, repeats=max(3, repeats // 4)),
        },
    }


def _print(label: str, doc: dict) -> None:
    print(f"{label}")
    print(
        f"  {'layer':22s} {'kind':9s} {'params':>9s} {'nonzero':>9s} {'MACs':>11s} "
        f"{'sparse MACs':>11s}"
    )
    for r in doc["layers"]:
        print(
            f"  {r['name']:22s} {r['kind']:9s} {r['params']:9d} {r['nonzero_weights']:9d} "
            f"{r['macs']:11d} {r['sparse_macs']:11d}"
        )
    t = doc["total"]
    print(
        f"  {'total':22s} {'':9s} {t['params']:9d} {t['nonzero_weights']:9d} {t['macs']:11d} "
        f"{t['sparse_macs']:11d}"
    )
    lat = doc["latency_ms"]
    print(
        f"  latency (median): batch 1 {lat['batch_1']:.3f} ms, batch 256 {lat['batch_256']:.2f} ms"
    )


def run(config: ProfileConfig) -> dict:
    """Profile the dense network and, if given, the checkpoint; return the document."""
    import torch

    from weightshare.networks.checkpoints import find_checkpoint, load_into
    from weightshare.outputs import check_output_dir, write_text_atomic
    from weightshare.pruning.costs import machine

    if config.log_file is not None:
        check_output_dir("--log_file", config.log_file)

    torch.set_num_threads(config.threads)
    spec = get_network(config.network)
    input_shape = (1, spec.input_size, spec.input_size)
    dense_path = find_checkpoint(spec.name, None, config.cache_dir)
    dense = load_into(spec.build(), dense_path) if dense_path else spec.build()
    doc = {
        "network": spec.name,
        "input_shape": list(input_shape),
        "machine": machine(),
        "dense": {"checkpoint": str(dense_path)} | _profile(dense, input_shape, config.repeats),
    }
    _print(f"{spec.name} dense ({dense_path})", doc["dense"])
    if config.checkpoint is not None:
        pruned = load_into(spec.build(), find_checkpoint(spec.name, config.checkpoint, None))
        doc["pruned"] = {"checkpoint": config.checkpoint} | _profile(
            pruned, input_shape, config.repeats
        )
        _print(f"{spec.name} pruned ({config.checkpoint})", doc["pruned"])
        d, p = doc["dense"]["total"], doc["pruned"]["total"]
        doc["summary"] = {
            "structural_macs_removed": 1 - p["macs"] / d["macs"],
            "sparse_macs_removed": 1 - p["sparse_macs"] / d["macs"],
            "params_removed": 1 - p["params"] / d["params"],
        }
        s = doc["summary"]
        print(
            f"MACs removed: structural {100 * s['structural_macs_removed']:.1f} %, skipping "
            f"zeros {100 * s['sparse_macs_removed']:.1f} %; params removed "
            f"{100 * s['params_removed']:.1f} %"
        )
    print(f"machine: {doc['machine']}")
    if config.log_file is not None:
        path = write_text_atomic(config.log_file / "profile.json", json.dumps(doc, indent=2))
        print(f"wrote {path}")
    return doc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``profile`` flags."""
    group = parser.add_argument_group("profile")
    group.add_argument(
        "--repeats",
        type=int,
        default=20,
        metavar="N",
        help="timed batch-1 passes per model (batch 256: N/4, at least 3); default 20",
    )


def main(args: argparse.Namespace) -> int:
    """``--mode profile`` from parsed flags."""
    config = ProfileConfig(
        args.network_dataset,
        args.checkpoint,
        args.cache_dir,
        args.repeats,
        args.threads,
        args.log_file,
    )
    run(config)
    return 0
