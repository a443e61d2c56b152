"""Deep Compression: prune + retrain, share + fine-tune centroids, entropy-code the model file

See docs/pruning.md. Loads the committed baseline, prunes by magnitude (iterative, masks
frozen), clusters each layer's survivors (k-means, linear init), optionally retrains them
through their shared values (``--qat-epochs``), fine-tunes the shared values (eq. 3, indices
fixed), writes ``model.wsz`` (``sparse_shared`` tensors) and
``deep_compression.json`` with the paper's per-layer, per-stage table."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from weightshare.errors import UserError
from weightshare.modes.retraining import (
    RetrainChoice,
    check_before_work,
    check_layer_keys,
    last_round_recipe,
    load_for_retraining,
    retrain_flags,
)
from weightshare.outputs import write_bytes_atomic, write_text_atomic
from weightshare.validation import check_choice, check_float, check_int, parse_key_values

# The paper's kept fractions (Deep Compression tables 2-3) mapped onto our layers.
DEFAULT_SPARSITY = {
    "lenet300_fashionmnist": "fc1.weight=0.92,fc2.weight=0.91,fc3.weight=0.74",
    "lenet5_fashionmnist": (
        "conv1.weight=0.34,conv2.weight=0.88,fc1.weight=0.92,fc2.weight=0.91,fc3.weight=0.74"
    ),
    "lenet5caffe_fashionmnist": (
        "conv1.weight=0.34,conv2.weight=0.88,fc1.weight=0.92,fc2.weight=0.81"
    ),
}
ENTROPY_CODERS = ("ans", "huffman")
STORED_FLOATS = ("fp32", "fp16")  # --codebook-dtype / --bias-dtype


@dataclass(frozen=True)
class DeepCompressionConfig(RetrainChoice):
    """Settings of ``--mode deep_compression`` (the retraining flags: the keyword-only fields
    of :class:`~weightshare.modes.retraining.RetrainChoice`; ``out`` None: ``log_file /
    model.wsz``).

    Attributes:
        sparsity: fraction removed per layer, one float or weight key -> float, each in [0, 1)
            (None: refused; ``main`` fills the network's ``DEFAULT_SPARSITY``).
        bits: ``{"conv": B, "fc": B}``, 2^B shared values per layer, B in [1, 16].
        layer_bits: weight key -> B, overriding ``bits`` for the layers it names (each a conv
            or linear weight of the network, pruned or not, checked before anything loads:
            :func:`~weightshare.modes.retraining.check_layer_keys`; B in [1, 16]).
        qat_epochs: epochs of quantization-aware retraining of the surviving weights through
            their shared values (``pruning/quantize.quantization_aware_retrain``) between
            the clustering and the centroid fine-tuning, in [0, 1000]; 0 skips it.
        qat_lr: its peak learning rate, in (0, 10].
        finetune_centroids: centroid fine-tuning epochs, in [0, 1000].
        centroid_lr: their learning rate, in (0, 1].
        coder: ``ans`` or ``huffman`` (an entropy coder: the paper's P+Q+H).
        codebook_dtype: ``fp32`` or ``fp16``: how the shared values are stored.
        bias_dtype: ``fp32`` or ``fp16``: how every float tensor that is not shared (biases,
            BatchNorm parameters and statistics) is stored.
    """

    mode: ClassVar[str] = "deep_compression"

    sparsity: float | dict[str, float] | None = None
    bits: dict[str, int] = field(default_factory=lambda: {"conv": 8, "fc": 5})
    layer_bits: dict[str, int] = field(default_factory=dict)
    qat_epochs: int = 0
    qat_lr: float = 0.01
    finetune_centroids: int = 2
    centroid_lr: float = 1e-3
    coder: str = "ans"
    codebook_dtype: str = "fp32"
    bias_dtype: str = "fp32"

    def __post_init__(self) -> None:
        from weightshare.modes.prune import check_sparsity

        super().__post_init__()
        if self.sparsity is None:
            raise UserError(
                f"--sparsity is needed for {self.network} (defaults exist for "
                f"{', '.join(DEFAULT_SPARSITY)})"
            )
        check_sparsity(self.sparsity)
        check_int("--qat-epochs", self.qat_epochs, 0, 1000)
        check_float("--qat-lr", self.qat_lr, 0, 10, low_open=True)
        check_int("--finetune-centroids", self.finetune_centroids, 0, 1000)
        check_int("--conv-bits", self.bits.get("conv"), 1, 16)
        check_int("--fc-bits", self.bits.get("fc"), 1, 16)
        for key, bits in self.layer_bits.items():
            check_int(f"--layer-bits {key}", bits, 1, 16)
        check_float("--centroid-lr", self.centroid_lr, 0, 1, low_open=True)
        check_choice("--codebook-dtype", self.codebook_dtype, STORED_FLOATS)
        check_choice("--bias-dtype", self.bias_dtype, STORED_FLOATS)
        if self.coder not in ENTROPY_CODERS:
            raise UserError(
                f"--coder must be an entropy coder (ans or huffman) for P+Q+H; got {self.coder}"
            )

    @property
    def out_file(self) -> Path:
        """The model file's path (``out``, else ``log_file / model.wsz``)."""
        return self.out or self.log_file / "model.wsz"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def print_table(doc: dict) -> None:
    """The paper's table on stdout."""
    rows = [*doc["table"]["layers"], doc["table"]["total"]]
    width = max(12, *(len(row["layer"]) for row in rows))
    print(
        f"{'layer':{width}s} {'#W':>7s} {'kept%':>6s} {'w bits P+Q->H':>14s} "
        f"{'idx bits P+Q->H':>16s} {'P':>7s} {'P+Q':>7s} {'P+Q+H':>7s}"
    )
    for row in rows:
        print(
            f"{row['layer']:{width}s} {row['weights']:7d} {_pct(row['kept']):>6s} "
            f"{row['weight_bits_pq']:6.2f}->{row['weight_bits_pqh']:5.2f}  "
            f"{row['index_bits_pq']:7.2f}->{row['index_bits_pqh']:5.2f}  "
            f"{row['ratio_p']:6.1f}x {row['ratio_pq']:6.1f}x {row['ratio_pqh']:6.1f}x"
        )
    print("accuracy (search / holdout, %):")
    for stage, acc in doc["accuracy"].items():
        print(f"  {stage:22s} {_pct(acc['search'])} / {_pct(acc['holdout'])}")


def run(config: DeepCompressionConfig) -> dict:
    """The pipeline; returns (and writes) the ``deep_compression.json`` document."""
    import dataclasses

    import numpy as np
    import torch

    from weightshare.codecs import decode_model, encode_model, original_bytes
    from weightshare.networks.checkpoints import model_state
    from weightshare.networks.registry import TrainRecipe
    from weightshare.pruning.magnitude import prunable
    from weightshare.pruning.quantize import (
        finetune_centroids,
        quantization_aware_retrain,
        share_pruned,
    )
    from weightshare.pruning.retrain import iterative_prune
    from weightshare.pruning.schedule import round_targets
    from weightshare.pruning.stages import stage_table

    check_layer_keys(config, {"--sparsity": config.sparsity, "--layer-bits": config.layer_bits})
    setup = load_for_retraining(config)
    spec, path, model, x, y = setup.spec, setup.path, setup.model, setup.x, setup.y
    n, recipe, scores = setup.n_train, setup.recipe, setup.scores
    dense_bytes = original_bytes(model_state(model))
    acc = {"baseline": scores(model)}
    masks = iterative_prune(
        model,
        x,
        y,
        recipe,
        sparsity_steps=round_targets(config.sparsity, config.steps, config.prune_schedule),
        last_recipe=last_round_recipe(config, recipe),
        on_step=lambda i, _: print(
            f"prune round {i}/{config.steps}: search {_pct(scores(model)['search'])} %"
        ),
        progress=True,
        loss=setup.loss,
    )
    acc["pruned_retrained"] = scores(model)
    weights = {key: w.detach().numpy().copy() for key, w in prunable(model).items()}
    k = {key: 2 ** layer_bits(config, key, weights[key].ndim) for key in masks}
    sparse = share_pruned(weights, k)
    with torch.no_grad():
        for key, sp in sparse.items():
            prunable(model)[key].copy_(torch.from_numpy(sp.dequantize()))
    acc["shared"] = scores(model)
    if config.qat_epochs > 0:
        with torch.no_grad():  # the float weights train on, not their shared values
            for key, w in weights.items():
                prunable(model)[key].copy_(torch.from_numpy(w))
        qat_recipe = dataclasses.replace(recipe, epochs=config.qat_epochs, lr=config.qat_lr)
        sparse = quantization_aware_retrain(
            model, sparse, x, y, qat_recipe, progress=True, loss=setup.loss
        )
        acc["quantization_aware"] = scores(model)
    centroid_recipe = TrainRecipe(
        epochs=config.finetune_centroids, lr=config.centroid_lr, weight_decay=0.0, seed=config.seed
    )
    sparse = finetune_centroids(
        model, sparse, x, y, centroid_recipe, progress=True, loss=setup.loss
    )
    sparse, state = stored_precision(model, sparse, config.codebook_dtype, config.bias_dtype)
    acc["shared_finetuned"] = scores(model)
    files = {
        coder: encode_model(
            state, sparse, network=spec.name, coder=coder, codebook_dtype=config.codebook_dtype
        )
        for coder in ("fixed", config.coder)
    }
    decoded = decode_model(files[config.coder])
    exact = all(np.array_equal(decoded.state[key], state[key]) for key in state)
    check = load_into_state(spec, decoded.state)
    acc["decoded_file"] = scores(check)
    table = stage_table(decode_model(files["fixed"]).manifest, decoded.manifest, dense_bytes)
    out_dir = Path(config.log_file)
    model_path = write_bytes_atomic(config.out_file, files[config.coder])
    doc = {
        "network": spec.name,
        "source": str(path),
        "settings": {
            "sparsity": config.sparsity,
            "prune_steps": config.steps,
            "prune_schedule": config.prune_schedule,
            "retrain_epochs": config.retrain_epochs,
            "final_epochs": config.final_epochs,
            "retrain_lr": config.retrain_lr,
            "retrain_weight_decay": config.retrain_weight_decay,
            "distill": config.distill,
            "distill_temperature": config.distill_temperature,
            "train_images": n,
            "bits": config.bits,
            "layer_bits": config.layer_bits,
            "qat_epochs": config.qat_epochs,
            "qat_lr": config.qat_lr,
            "finetune_centroids": config.finetune_centroids,
            "centroid_lr": config.centroid_lr,
            "coder": config.coder,
            "codebook_dtype": config.codebook_dtype,
            "bias_dtype": config.bias_dtype,
            "threads": config.threads,
            "seed": config.seed,
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


def layer_bits(config: DeepCompressionConfig, key: str, ndim: int) -> int:
    """Bits of the shared values of weight ``key`` (``ndim`` 4: a conv): ``--layer-bits``,
    else ``--conv-bits`` / ``--fc-bits``."""
    return config.layer_bits.get(key, config.bits["conv" if ndim == 4 else "fc"])


def stored_precision(model, sparse: dict, codebook_dtype: str, bias_dtype: str):
    """Round ``model`` to what the model file stores, and return what to encode.

    Args:
        model: the fine-tuned PyTorch module (changed in place: its shared weights get the
            rounded codebooks; with ``bias_dtype`` fp16 every other float tensor is rounded to
            float16 and held as float32).
        sparse: weight key -> fine-tuned ``SparseShared``.
        codebook_dtype, bias_dtype: ``fp32`` (unchanged) or ``fp16``.

    Returns:
        ``(sparse, state)``: the shared tensors with codebooks as stored, and the state dict
        as numpy arrays (float16 for the rounded tensors that are not shared), so that the
        decoded file equals ``state`` and ``model`` bit for bit.

    Raises:
        UserError: a value beyond fp16's range (65504) where fp16 was asked for.
    """
    import numpy as np
    import torch

    from weightshare.codecs.codebook import round_codebook
    from weightshare.codecs.sparse import SparseShared
    from weightshare.networks.checkpoints import model_state

    rounded = {
        key: SparseShared(
            sp.mask, round_codebook(sp.shared, codebook_dtype, weights=sp.shared.dequantize())
        )
        for key, sp in sparse.items()
    }
    tensors = model.state_dict()  # shares storage with the parameters and buffers
    with torch.no_grad():
        for key, sp in rounded.items():
            tensors[key].copy_(torch.from_numpy(sp.dequantize()))
        if bias_dtype == "fp16":
            for key, tensor in tensors.items():
                if key in rounded or not tensor.is_floating_point():
                    continue
                largest = float(tensor.abs().max()) if tensor.numel() else 0.0
                if largest > float(np.finfo(np.float16).max):
                    raise UserError(
                        f"--bias-dtype fp16: {key} holds |x| = {largest:g}, beyond fp16's "
                        "range (65504); use --bias-dtype fp32"
                    )
                tensor.copy_(tensor.half().float())
    state = model_state(model)
    if bias_dtype == "fp16":
        state = {
            key: value.astype(np.float16)
            if key not in rounded and value.dtype == np.float32
            else value
            for key, value in state.items()
        }
    return rounded, state


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
        "--qat-epochs",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="epochs of quantization-aware retraining after the clustering: the surviving "
        "weights train with the network computing through their nearest shared value "
        "(straight-through gradient), each codebook following its weights (default 0: skip)",
    )
    group.add_argument(
        "--qat-lr",
        type=float,
        default=0.01,
        metavar="LR",
        help="peak lr of the quantization-aware retraining (default 0.01)",
    )
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
    group.add_argument(
        "--layer-bits",
        default=None,
        metavar="KEY=B,...",
        help="per-layer bits overriding --conv-bits/--fc-bits, by weight key "
        "(e.g. fc1.weight=3,conv1.weight=6)",
    )
    group.add_argument(
        "--bias-dtype",
        choices=STORED_FLOATS,
        default="fp32",
        help="storage of the tensors that are not shared (biases, BatchNorm); fp16 rounds "
        "them and the model is scored as rounded (default fp32; --codebook-dtype fp16 does "
        "the same for the shared values)",
    )


def parse_layer_bits(text: str | None) -> dict[str, int]:
    """``fc1.weight=3,conv1.weight=6`` -> weight key -> bits (None or empty: no overrides).

    Raises:
        UserError: not ``KEY=INT`` items separated by commas, or a key given twice.
    """
    if not text:
        return {}
    return parse_key_values("--layer-bits", text, _whole, "KEY=B,KEY=B (weight keys, ints)")


def _whole(text: str) -> int:
    """An optionally negative run of digits -> int (no ``+``, ``_`` or decimal point)."""
    if not text.strip().lstrip("-").isdigit():
        raise ValueError(text)
    return int(text)


def main(args: argparse.Namespace) -> int:
    """``--mode deep_compression`` from parsed flags."""
    from weightshare.modes.prune import parse_sparsity
    from weightshare.networks import get_network

    name = get_network(args.network_dataset).name
    text = DEFAULT_SPARSITY.get(name) if args.sparsity is None else args.sparsity
    config = DeepCompressionConfig(
        sparsity=None if text is None else parse_sparsity(text),
        bits={"conv": args.conv_bits, "fc": args.fc_bits},
        qat_epochs=args.qat_epochs,
        qat_lr=args.qat_lr,
        finetune_centroids=args.finetune_centroids,
        centroid_lr=args.centroid_lr,
        coder=args.coder,
        codebook_dtype=args.codebook_dtype or "fp32",
        bias_dtype=args.bias_dtype,
        layer_bits=parse_layer_bits(args.layer_bits),
        **retrain_flags(args, default_out="model.wsz"),
    )
    check_before_work(config, out_given=args.out is not None)
    run(config)
    return 0
