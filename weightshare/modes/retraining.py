"""The retraining flags that ``--mode prune`` and ``--mode deep_compression`` share, as one
validated config base (keyword-only fields, so each mode's own fields come first)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.pruning.magnitude import check_weight_keys
from weightshare.pruning.schedule import SCHEDULES
from weightshare.validation import check_choice, check_float, check_int


@dataclass(frozen=True, kw_only=True)
class RetrainChoice:
    """A trainable Fashion-MNIST network, where its outputs go, and how it is retrained.

    Attributes:
        network: registry name (``--network_dataset``); ImageNet zoo networks are refused.
        log_file: directory of the mode's JSON document (and of its model by default).
        out: the mode's model file (None: in ``log_file``).
        steps: prune/retrain rounds, in [1, 100].
        prune_schedule: how the rounds approach the target (``pruning/schedule.py``):
            ``linear`` (round i prunes to ``i / steps`` of it) or ``geometric`` (the kept
            fraction shrinks by the same factor every round).
        retrain_epochs: fine-tuning epochs after each round, in [0, 1000].
        final_epochs: fine-tuning epochs after the last round, in [0, 1000] (None:
            ``retrain_epochs``).
        retrain_lr: peak learning rate of the fine-tuning's one-cycle schedule, in (0, 10].
        retrain_weight_decay: its L2 penalty on every parameter, in [0, 1].
        distill: weight in [0, 1] of the distillation term from the dense network loaded
            (``pruning/distill.py``) in the retraining loss; 0: plain cross-entropy.
        distill_temperature: its temperature, in (0, 100].
        train_images: first N images of the train split used for retraining, in [1, 60000]
            (None: all 60k).
        checkpoint, cache_dir, data_dir: where the trained weights and the images are.
        threads: torch threads, >= 1.
        seed: seeds the retraining (shuffling, augmentation; a nonzero seed also seeds
            torch's global generator: dropout), the quantization-aware retraining and the
            centroid fine-tuning (``--seed``; 0, the default: the runs recorded before the
            flag, bit for bit).
    """

    mode: ClassVar[str] = ""  # the --mode name, for messages

    network: str
    log_file: Path | None
    out: Path | None = None
    steps: int = 1
    prune_schedule: str = "linear"
    retrain_epochs: int = 2
    final_epochs: int | None = None
    retrain_lr: float = 0.01
    retrain_weight_decay: float = 5e-5
    distill: float = 0.0
    distill_temperature: float = 4.0
    train_images: int | None = None
    checkpoint: str | None = None
    cache_dir: Path | None = None
    data_dir: str | None = None
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("--prune-steps", self.steps, 1, 100)
        check_choice("--prune-schedule", self.prune_schedule, SCHEDULES)
        check_int("--retrain-epochs", self.retrain_epochs, 0, 1000)
        if self.final_epochs is not None:
            check_int("--final-epochs", self.final_epochs, 0, 1000)
        if self.train_images is not None:
            check_int("--train-images", self.train_images, 1, 60000)
        check_float("--retrain-lr", self.retrain_lr, 0, 10, low_open=True)
        check_float("--retrain-weight-decay", self.retrain_weight_decay, 0, 1)
        check_float("--distill", self.distill, 0, 1)
        check_float("--distill-temperature", self.distill_temperature, 0, 100, low_open=True)
        check_int("--threads", self.threads, 1)
        check_int("--seed", self.seed, 0)
        if self.log_file is None:
            raise UserError(f"--mode {self.mode} needs --log_file DIR for its outputs")
        spec = get_network(self.network)
        if spec.recipe is None:
            raise UserError(
                f"{spec.name} is an ImageNet zoo network: --mode {self.mode} retrains on "
                "Fashion-MNIST only"
            )


def retrain_flags(args, default_out: str) -> dict:
    """The :class:`RetrainChoice` fields from parsed command-line ``args``, as keyword
    arguments; ``out`` is ``--out``, else ``default_out`` in ``--log_file``."""
    out = args.out
    if out is None and args.log_file is not None:
        out = Path(args.log_file) / default_out
    return {
        "network": args.network_dataset,
        "log_file": args.log_file,
        "out": out,
        "steps": args.prune_steps,
        "prune_schedule": args.prune_schedule,
        "retrain_epochs": args.retrain_epochs,
        "final_epochs": args.final_epochs,
        "retrain_lr": args.retrain_lr,
        "retrain_weight_decay": args.retrain_weight_decay,
        "distill": args.distill,
        "distill_temperature": args.distill_temperature,
        "train_images": args.train_images,
        "checkpoint": args.checkpoint,
        "cache_dir": args.cache_dir,
        "data_dir": args.data_dir,
        "threads": args.threads,
        "seed": args.seed,
    }


def last_round_recipe(config: RetrainChoice, recipe):
    """The fine-tuning recipe of the last prune round: ``recipe`` with ``config.final_epochs``
    epochs (``--final-epochs``), or ``recipe`` itself when that is None."""
    import dataclasses

    if config.final_epochs is not None:
        return dataclasses.replace(recipe, epochs=config.final_epochs)
    return recipe


def check_layer_keys(config: RetrainChoice, settings: Mapping[str, object]) -> None:
    """Before anything loads: every key of a per-layer setting is a conv/linear weight of
    ``config.network`` (a key that names nothing would be ignored silently).

    Args:
        settings: flag -> its parsed value (``{"--sparsity": ..., "--layer-bits": ...}``); the
            keys of a map are checked, a float or None is skipped.

    Raises:
        UserError: the first unknown key, naming the flag and the allowed keys.
    """
    named = {flag: value for flag, value in settings.items() if isinstance(value, Mapping)}
    if not any(named.values()):
        return
    spec = get_network(config.network)
    model = spec.build()
    for flag, value in named.items():
        check_weight_keys(flag, value, model, spec.name)


def check_before_work(config: RetrainChoice, out_given: bool) -> None:
    """Before any training: the output directory is writable, ``--out`` (when given) can be
    written, and the Fashion-MNIST files are found (one-line errors otherwise)."""
    from weightshare.networks.datasets import resolve_data_dir
    from weightshare.outputs import check_output_dir, check_output_file

    check_output_dir("--log_file", config.log_file)
    if out_given:
        check_output_file("--out", config.out)
    resolve_data_dir(config.data_dir)


@dataclass
class RetrainSetup:
    """A trained network loaded for pruning and retraining, with its images.

    Attributes:
        spec: the registry entry.
        path: the checkpoint loaded.
        model: the PyTorch module (trained weights).
        x, y: the retraining images, float32 ``(n_train, C, S, S)``, int64 labels ``(n_train,)``.
        n_train: images used for retraining.
        evals: ``search`` and ``holdout`` as ``(images, labels)`` tensors.
        recipe: the fine-tuning recipe (one-cycle SGD, ``--retrain-weight-decay``, the
            network's augmentation).
        loss: the retraining's batch loss: distillation from a frozen copy of the loaded
            network (``--distill``), or None (cross-entropy).
    """

    spec: Any
    path: Path
    model: Any
    x: Any
    y: Any
    n_train: int
    evals: dict
    recipe: Any
    loss: Any = None

    def scores(self, model=None) -> dict[str, float]:
        """Top-1 of ``model`` (default: the loaded one) on ``search`` and ``holdout``."""
        from weightshare.networks.training import accuracy

        m = self.model if model is None else model
        return {name: accuracy(m, *xy) for name, xy in self.evals.items()}


def load_for_retraining(config: RetrainChoice) -> RetrainSetup:
    """Load the trained checkpoint and the images ``config`` names (torch threads set).

    Raises:
        UserError: no trained weights for the network.
    """
    import torch

    from weightshare.networks.checkpoints import find_checkpoint, load_into
    from weightshare.networks.datasets import load_split
    from weightshare.networks.registry import TrainRecipe
    from weightshare.networks.tensors import images_to_tensor

    torch.set_num_threads(config.threads)
    spec = get_network(config.network)
    path = find_checkpoint(spec.name, config.checkpoint, config.cache_dir)
    if path is None:
        raise UserError(f"no trained weights for {spec.name}: run --mode train or --checkpoint")
    model = load_into(spec.build(), path)
    if config.seed != 0:  # dropout draws from the global generator; 0 keeps its recorded state
        torch.manual_seed(config.seed)
    train = load_split("train", config.data_dir)
    n_train = len(train.labels) if config.train_images is None else config.train_images
    evals = {
        name: (images_to_tensor(s.images, spec.input_size), torch.from_numpy(s.labels))
        for name, s in (
            ("search", load_split("search", config.data_dir)),
            ("holdout", load_split("holdout", config.data_dir)),
        )
    }
    recipe = TrainRecipe(
        epochs=config.retrain_epochs,
        batch_size=128,
        lr=config.retrain_lr,
        weight_decay=config.retrain_weight_decay,
        augment=spec.recipe.augment,
        seed=config.seed,
    )
    loss = None
    if config.distill > 0:
        import copy

        from weightshare.pruning.distill import distillation_loss

        loss = distillation_loss(copy.deepcopy(model), config.distill, config.distill_temperature)
    return RetrainSetup(
        spec,
        path,
        model,
        images_to_tensor(train.images[:n_train], spec.input_size),
        torch.from_numpy(train.labels[:n_train]),
        n_train,
        evals,
        recipe,
        loss,
    )
