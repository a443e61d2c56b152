"""Deep Compression: prune + retrain, share + fine-tune centroids, entropy-code the model file

See docs/pruning.md. Loads the committed baseline, prunes by magnitude (iterative, masks
frozen), clusters each layer's survivors (k-means, linear init), fine-tunes the shared values
(eq. 3, indices fixed), writes ``model.wsz`` (``sparse_shared`` tensors) and
``deep_compression.json`` with the paper's per-layer, per-stage table."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from weightshare.errors import UserError
from weightshare.outputs import write_bytes_atomic, write_text_atomic

# The paper's kept fractions (Deep Compression tables 2-3) mapped onto our layers.
DEFAULT_SPARSITY = {
    "lenet300_fashionmnist": "fc1.weight=0.92,fc2.weight=0.91,fc3.weight=0.74",
    "lenet5_fashionmnist": (
        "conv1.weight=0.34,conv2.weight=0.88,fc1.weight=0.92,fc2.weight=0.91,fc3.weight=0.74"
    ),
}


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def print_table(doc: dict) -> None:
    """The paper's table on stdout."""
    print(
        f"{'layer':12s} {'#W':>7s} {'kept%':>6s} {'w bits P+Q->H':>14s} "
        f"{'idx bits P+Q->H':>16s} {'P':>7s} {'P+Q':>7s} {'P+Q+H':>7s}"
    )
    for row in [*doc["table"]["layers"], doc["table"]["total"]]:
        print(
            f"{row['layer']:12s} {row['weights']:7d} {_pct(row['kept']):>6s} "
            f"{row['weight_bits_pq']:6.2f}->{row['weight_bits_pqh']:5.2f}  "
            f"{row['index_bits_pq']:7.2f}->{row['index_bits_pqh']:5.2f}  "
            f"{row['ratio_p']:6.1f}x {row['ratio_pq']:6.1f}x {row['ratio_pqh']:6.1f}x"
        )
    print("accuracy (search / holdout, %):")
    for stage, acc in doc["accuracy"].items():
        print(f"  {stage:22s} {_pct(acc['search'])} / {_pct(acc['holdout'])}")


def run(args: argparse.Namespace, sparsity, bits: dict[str, int]) -> dict:
    """The pipeline; returns (and writes) the ``deep_compression.json`` document."""
    import numpy as np
    import torch

    from weightshare.codecs import decode_model, encode_model, original_bytes
    from weightshare.modes.prune import _scaled
    from weightshare.networks import get_network
    from weightshare.networks.checkpoints import find_checkpoint, load_into, model_state
    from weightshare.networks.datasets import load_split
    from weightshare.networks.registry import TrainRecipe
    from weightshare.networks.tensors import images_to_tensor
    from weightshare.networks.training import accuracy
    from weightshare.pruning.magnitude import magnitude_masks, prunable
    from weightshare.pruning.quantize import finetune_centroids, share_pruned
    from weightshare.pruning.retrain import retrain
    from weightshare.pruning.stages import stage_table

    torch.set_num_threads(args.threads)
    spec = get_network(args.network_dataset)
    path = find_checkpoint(spec.name, args.checkpoint, args.cache_dir)
    if path is None:
        raise UserError(f"no trained weights for {spec.name}: run --mode train or --checkpoint")
    model = load_into(spec.build(), path)
    dense_bytes = original_bytes(model_state(model))
    train = load_split("train", args.data_dir)
    n = len(train.labels) if args.train_images is None else args.train_images
    x = images_to_tensor(train.images[:n], spec.input_size)
    y = torch.from_numpy(train.labels[:n])
    evals = {
        name: (images_to_tensor(s.images, spec.input_size), torch.from_numpy(s.labels))
        for name, s in (
            ("search", load_split("search", args.data_dir)),
            ("holdout", load_split("holdout", args.data_dir)),
        )
    }

    def scores(m) -> dict[str, float]:
        return {name: accuracy(m, *xy) for name, xy in evals.items()}

    acc = {"baseline": scores(model)}
    recipe = TrainRecipe(
        epochs=args.retrain_epochs,
        lr=args.retrain_lr,
        weight_decay=5e-5,
        augment=spec.recipe.augment,
        seed=0,
    )
    masks = None
    for i in range(1, args.prune_steps + 1):
        target = _scaled(sparsity, i / args.prune_steps)
        masks = magnitude_masks(model, sparsity=target, masks=masks)
        retrain(model, masks, x, y, recipe, progress=True, desc=f"prune round {i}")
        print(f"prune round {i}/{args.prune_steps}: search {_pct(scores(model)['search'])} %")
    acc["pruned_retrained"] = scores(model)
    weights = {key: w.detach().numpy().copy() for key, w in prunable(model).items()}
    k = {key: 2 ** bits["conv" if weights[key].ndim == 4 else "fc"] for key in masks}
    sparse = share_pruned(weights, k)
    with torch.no_grad():
        for key, sp in sparse.items():
            prunable(model)[key].copy_(torch.from_numpy(sp.dequantize()))
    acc["shared"] = scores(model)
    centroid_recipe = TrainRecipe(
        epochs=args.finetune_centroids, lr=args.centroid_lr, weight_decay=0.0, seed=0
    )
    sparse = finetune_centroids(model, sparse, x, y, centroid_recipe, progress=True)
    acc["shared_finetuned"] = scores(model)
    state = {key: value for key, value in model_state(model).items()}
    files = {
        coder: encode_model(state, sparse, network=spec.name, coder=coder)
        for coder in ("fixed", args.coder)
    }
    decoded = decode_model(files[args.coder])
    exact = all(np.array_equal(decoded.state[key], state[key]) for key in state)
    check = load_into_state(spec, decoded.state)
    acc["decoded_file"] = scores(check)
    table = stage_table(decode_model(files["fixed"]).manifest, decoded.manifest, dense_bytes)
    out_dir = Path(args.log_file)
    model_path = write_bytes_atomic(args.out or out_dir / "model.wsz", files[args.coder])
    doc = {
        "network": spec.name,
        "source": str(path),
        "settings": {
            "sparsity": sparsity,
            "prune_steps": args.prune_steps,
            "retrain_epochs": args.retrain_epochs,
            "retrain_lr": args.retrain_lr,
            "train_images": n,
            "bits": bits,
            "finetune_centroids": args.finetune_centroids,
            "centroid_lr": args.centroid_lr,
            "coder": args.coder,
            "threads": args.threads,
        },
        "table": table,
        "accuracy": acc,
        "holdout_drop_points": 100 * (acc["baseline"]["holdout"] - acc["decoded_file"]["holdout"]),
        "decoded_equals_encoded": exact,
        "model_file": str(model_path),
    }
    write_text_atomic(out_dir / "deep_compression.json", json.dumps(doc, indent=2))
    print_table(doc)
    total = table["total"]
    print(
        f"{spec.name}: model file {total['file_bytes_pqh']} bytes vs fp32 {dense_bytes} -> "
        f"{total['ratio_pqh']:.1f}x; holdout {_pct(acc['baseline']['holdout'])} -> "
        f"{_pct(acc['decoded_file']['holdout'])} % ({doc['holdout_drop_points']:+.2f} points "
        "lost)"
    )
    print(f"wrote {model_path} and {out_dir / 'deep_compression.json'}")
    return doc


def load_into_state(spec, state):
    """A fresh ``spec`` network holding the decoded ``state`` (strict)."""
    import torch

    model = spec.build()
    model.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()})
    return model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``deep_compression`` flags (the pruning ones come from ``--mode prune``)."""
    group = parser.add_argument_group("deep_compression")
    group.add_argument(
        "--finetune-centroids",
        type=int,
        default=1,
        metavar="EPOCHS",
        help="epochs of trained quantization: shared values fine-tuned with the summed "
        "gradient of their weights, indices fixed (default 1; 0 skips)",
    )
    group.add_argument(
        "--centroid-lr",
        type=float,
        default=1e-3,
        metavar="LR",
        help="peak lr of the centroid fine-tuning (default 1e-3: a centroid's gradient is a "
        "sum over its weights)",
    )
    group.add_argument(
        "--conv-bits",
        type=int,
        default=5,
        metavar="B",
        help="shared values per conv layer = 2^B (default 5)",
    )
    group.add_argument(
        "--fc-bits",
        type=int,
        default=5,
        metavar="B",
        help="shared values per linear layer = 2^B (default 5, the paper's)",
    )


def main(args: argparse.Namespace) -> int:
    """``--mode deep_compression`` from parsed flags."""
    from weightshare.modes.prune import check_common, parse_sparsity
    from weightshare.networks import get_network
    from weightshare.networks.datasets import resolve_data_dir
    from weightshare.validation import check_int

    check_common(args)
    spec = get_network(args.network_dataset)
    if spec.recipe is None:
        raise UserError(
            f"{spec.name} is an ImageNet zoo network: deep_compression retrains "
            "on Fashion-MNIST only"
        )
    text = DEFAULT_SPARSITY.get(spec.name) if args.sparsity is None else args.sparsity
    if text is None:
        raise UserError(
            f"--sparsity is needed for {spec.name} (defaults exist for "
            f"{', '.join(DEFAULT_SPARSITY)})"
        )
    sparsity = parse_sparsity(text)
    values = sparsity.values() if isinstance(sparsity, dict) else [sparsity]
    if not all(0 <= v < 1 for v in values):
        raise UserError(f"--sparsity values must lie in [0, 1); got {text!r}")
    check_int("--finetune-centroids", args.finetune_centroids, 0, 1000)
    bits = {
        "conv": check_int("--conv-bits", args.conv_bits, 1, 16),
        "fc": check_int("--fc-bits", args.fc_bits, 1, 16),
    }
    if not 0 < args.centroid_lr <= 1 or math.isnan(args.centroid_lr):
        raise UserError(f"--centroid-lr must be a float in (0, 1]; got {args.centroid_lr!r}")
    if args.coder == "fixed":
        raise UserError("--coder must be an entropy coder (ans or huffman) for P+Q+H; got fixed")
    resolve_data_dir(args.data_dir)
    run(args, sparsity, bits)
    return 0
