"""prune a trained registry network (magnitude or FPGM), retrain with masks frozen, save it

See docs/pruning.md. Writes ``<log_file>/pruned.pt`` (a plain state dict; for FPGM the smaller
network, with its channel counts in ``pruned.pt.arch.json``) and ``prune.json``. Every other
mode accepts the checkpoint through ``--checkpoint``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
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
from weightshare.outputs import write_text_atomic
from weightshare.pruning.schedule import SCHEDULES
from weightshare.validation import check_choice, check_float, parse_key_values

METHODS = ("magnitude", "fpgm")


@dataclass(frozen=True)
class PruneConfig(RetrainChoice):
    """Settings of ``--mode prune`` (the retraining flags: the keyword-only fields of
    :class:`~weightshare.modes.retraining.RetrainChoice`; ``out`` None: ``log_file /
    pruned.pt``).

    Attributes:
        method: ``magnitude`` or ``fpgm``.
        sparsity: magnitude: fraction removed per layer, one float or weight key -> float, each
            in [0, 1).
        quality: magnitude: remove ``|w| < quality * std`` instead (None: use sparsity), in
            [0, 100).
        rate: fpgm: fraction of the filters of each prunable conv removed, in [0, 1).
    """

    mode: ClassVar[str] = "prune"

    method: str = "magnitude"
    sparsity: float | dict[str, float] | None = None
    quality: float | None = None
    rate: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("--method", self.method, METHODS)
        targeted = self.method == "magnitude" and self.sparsity is not None
        if self.prune_schedule != "linear" and not targeted:  # no target sparsity to approach
            what = "--quality" if self.method == "magnitude" else f"--method {self.method}"
            raise UserError(
                f"--prune-schedule {self.prune_schedule} shapes the rounds of --method magnitude "
                f"--sparsity; got {what}"
            )
        if self.method == "magnitude":
            if self.quality is not None and self.sparsity is not None:
                raise UserError("give --sparsity or --quality, not both")
            if self.quality is not None:
                check_float("--quality", self.quality, 0, 100, high_open=True)
            elif self.sparsity is None:
                raise UserError("--mode prune --method magnitude needs --sparsity or --quality")
            else:
                check_sparsity(self.sparsity)
        else:
            from weightshare.networks.shrink import chains_for

            check_float("--prune-rate", self.rate, 0, 1, high_open=True)
            chains_for(self.network)

    @property
    def out_file(self) -> Path:
        """The pruned checkpoint's path (``out``, else ``log_file / pruned.pt``)."""
        return self.out or self.log_file / "pruned.pt"


def check_sparsity(sparsity: float | dict[str, float]) -> None:
    """UserError unless every value of a parsed ``--sparsity`` lies in [0, 1)."""
    values = sparsity.values() if isinstance(sparsity, dict) else [sparsity]
    if not all(0 <= v < 1 for v in values):
        raise UserError(f"--sparsity values must lie in [0, 1); got {sparsity!r}")


def parse_sparsity(text: str) -> float | dict[str, float]:
    """``0.9`` or ``fc1.weight=0.92,fc2.weight=0.9`` -> a float or a map weight key -> float.

    Raises:
        UserError: anything else, or a key given twice.
    """
    form = "a float in [0, 1) or KEY=F,KEY=F (weight keys)"
    if "=" in text:
        return parse_key_values("--sparsity", text, float, form)
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--sparsity must be {form}; got {text!r}") from None


def run(config: PruneConfig) -> dict:
    """Load the baseline, prune, retrain, save; return (and write) the ``prune.json`` dict."""

    from weightshare.networks.checkpoints import load_into, save_state_dict
    from weightshare.networks.shrink import chains_for, channel_counts, write_architecture
    from weightshare.pruning.fpgm import fpgm_prune
    from weightshare.pruning.magnitude import kept_fraction, prunable
    from weightshare.pruning.retrain import iterative_prune, retrain
    from weightshare.pruning.schedule import round_targets

    check_layer_keys(config, {"--sparsity": config.sparsity})
    setup = load_for_retraining(config)
    spec, path, model, x, y = setup.spec, setup.path, setup.model, setup.x, setup.y
    recipe = setup.recipe

    def scores(m=None) -> dict[str, float]:
        return setup.scores(model if m is None else m)

    def n_params() -> int:
        return sum(p.numel() for p in model.parameters())

    doc = {
        "network": spec.name,
        "method": config.method,
        "source": str(path),
        "settings": asdict(config),
        "parameters_before": n_params(),
        "accuracy_before": scores(),
    }
    doc["settings"] = json.loads(json.dumps(doc["settings"], default=str))
    if config.method == "magnitude":
        rounds = []

        def pruned(i: int, masks: dict) -> None:
            rounds.append({"round": i, "kept": kept_fraction(masks), "accuracy_pruned": scores()})

        def retrained(i: int, masks: dict) -> None:
            rounds[-1]["accuracy_retrained"] = scores()
            kept = sum(int(m.sum()) for m in masks.values())
            total = sum(m.numel() for m in masks.values())
            print(
                f"round {i}/{config.steps}: kept {100 * kept / total:.2f} % of the weights; "
                f"search {100 * rounds[-1]['accuracy_pruned']['search']:.2f} % pruned -> "
                f"{100 * rounds[-1]['accuracy_retrained']['search']:.2f} % retrained"
            )

        if config.quality is None:
            targets = round_targets(config.sparsity, config.steps, config.prune_schedule)
            steps = {"sparsity_steps": targets}
        else:
            steps = {"quality_steps": [config.quality] * config.steps}
        masks = iterative_prune(
            model,
            x,
            y,
            recipe,
            **steps,
            last_recipe=last_round_recipe(config, recipe),
            after_prune=pruned,
            on_step=retrained,
            progress=True,
            loss=setup.loss,
        )
        doc["rounds"] = rounds
        doc["kept"] = kept_fraction(masks)
        doc["weights_kept"] = sum(int(m.sum()) for m in masks.values())
        doc["weights_total"] = sum(int(m.numel()) for m in masks.values())
        assert all(bool((prunable(model)[k][~m] == 0).all()) for k, m in masks.items())
    else:
        model, _ = fpgm_prune(model, spec.name, config.rate)
        doc["accuracy_pruned"] = scores()
        fpgm_recipe = last_round_recipe(config, recipe)  # its one round is the last
        retrain(model, {}, x, y, fpgm_recipe, progress=True, desc="fpgm retrain", loss=setup.loss)
        doc["channels"] = channel_counts(model, chains_for(spec.name))
    doc["parameters_after"] = n_params()
    doc["accuracy_after"] = scores()
    save_state_dict(model.state_dict(), config.out_file)
    if config.method == "fpgm":
        doc["architecture"] = str(write_architecture(config.out_file, spec.name, doc["channels"]))
    doc["checkpoint"] = str(config.out_file)
    # the file as every other mode will load it (architecture JSON included) scores the same
    doc["accuracy_reloaded"] = scores(load_into(spec.build(), config.out_file))
    write_text_atomic(config.log_file / "prune.json", json.dumps(doc, indent=2))
    before, after = doc["accuracy_before"], doc["accuracy_after"]
    print(
        f"{spec.name} {config.method}: parameters {doc['parameters_before']} -> "
        f"{doc['parameters_after']}"
        + (
            f", weights kept {doc['weights_kept']}/{doc['weights_total']}"
            if config.method == "magnitude"
            else ""
        )
    )
    print(
        f"accuracy search {100 * before['search']:.2f} -> {100 * after['search']:.2f} %, "
        f"holdout {100 * before['holdout']:.2f} -> {100 * after['holdout']:.2f} %"
    )
    print(f"wrote {config.out_file} and {config.log_file / 'prune.json'}")
    return doc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``prune`` flags (``deep_compression`` reuses the magnitude ones)."""
    group = parser.add_argument_group("prune / deep_compression")
    group.add_argument(
        "--sparsity",
        default=None,
        metavar="F|KEY=F,...",
        help="magnitude: fraction of each layer's weights removed, one float or per weight key "
        "(e.g. fc1.weight=0.92,fc2.weight=0.91; unnamed layers unpruned); default 0.9",
    )
    group.add_argument(
        "--quality",
        type=float,
        default=None,
        metavar="Q",
        help="magnitude: remove |w| < Q x std of the layer instead of a target sparsity",
    )
    group.add_argument(
        "--prune-steps",
        type=int,
        default=1,
        metavar="N",
        help="magnitude: prune/retrain rounds (default 1)",
    )
    group.add_argument(
        "--prune-schedule",
        choices=SCHEDULES,
        default="linear",
        help="magnitude --sparsity: round i of N prunes to i/N of the target (linear, the "
        "default) or keeps (1 - target)^(i/N) (geometric: the same share of what is left "
        "every round)",
    )
    group.add_argument(
        "--prune-rate",
        type=float,
        default=0.4,
        metavar="R",
        help="fpgm: fraction of each prunable conv's filters removed (default 0.4)",
    )
    group.add_argument(
        "--retrain-epochs",
        type=int,
        default=2,
        metavar="E",
        help="fine-tuning epochs after each pruning round, masks frozen (default 2)",
    )
    group.add_argument(
        "--final-epochs",
        type=int,
        default=None,
        metavar="E",
        help="fine-tuning epochs after the last pruning round (default: --retrain-epochs)",
    )
    group.add_argument(
        "--retrain-lr", type=float, default=0.01, metavar="LR", help="peak lr of the fine-tuning"
    )
    group.add_argument(
        "--retrain-weight-decay",
        type=float,
        default=5e-5,
        metavar="WD",
        help="L2 penalty of the fine-tuning (default 5e-5; the recipes train with 5e-4)",
    )
    group.add_argument(
        "--distill",
        type=float,
        default=0.0,
        metavar="ALPHA",
        help="retrain with knowledge distillation from the dense network: weight in [0, 1] of "
        "its softened outputs in the loss, the labels get 1 - ALPHA (default 0: labels only)",
    )
    group.add_argument(
        "--distill-temperature",
        type=float,
        default=4.0,
        metavar="T",
        help="temperature of --distill (default 4)",
    )
    group.add_argument(
        "--train-images",
        type=int,
        default=None,
        metavar="N",
        help="retrain on the first N training images only (default: all 60,000)",
    )


def main(args: argparse.Namespace) -> int:
    """``--mode prune`` from parsed flags."""

    method = "magnitude" if args.method is None else args.method
    sparsity = None
    if method == "magnitude" and args.sparsity is not None:
        sparsity = parse_sparsity(args.sparsity)
    elif method == "magnitude" and args.quality is None:
        sparsity = parse_sparsity("0.9")  # the documented default
    config = PruneConfig(
        method=method,
        sparsity=sparsity,
        quality=args.quality,
        rate=args.prune_rate,
        **retrain_flags(args, default_out="pruned.pt"),
    )
    check_before_work(config, out_given=args.out is not None)
    run(config)
    return 0
