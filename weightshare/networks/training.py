"""``--mode train``: train a registry network on the Fashion-MNIST train split.

One checkpoint per epoch, ``<cache>/<network>/EPOCH_LR.pt`` (for example ``12_0.1.pt``, the naming
the residual-coding seed expects), each a plain ``state_dict`` loadable with
``torch.load(..., weights_only=True)``. Training is bit-reproducible for a given thread count on a
given CPU: one seed drives initialisation, shuffling and augmentation (a dedicated generator, no
data-loader workers), the thread count is set explicitly and PyTorch's deterministic algorithms are
on while it runs. Another CPU may pick other BLAS kernels (MKL and oneDNN dispatch on the
instruction set), which round differently, so the bits are per machine; docs/benchmarks.md gives
the accuracy spread that leaves.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from weightshare.errors import UserError
from weightshare.networks.checkpoints import checkpoint_dir, find_checkpoint, save_state_dict
from weightshare.networks.datasets import Split, load_split
from weightshare.networks.registry import NetworkSpec, TrainRecipe
from weightshare.networks.tensors import images_to_tensor


@dataclass(frozen=True)
class EpochLog:
    """One epoch of training: mean train loss, accuracy on the monitor split, wall seconds."""

    epoch: int
    train_loss: float
    monitor_accuracy: float
    seconds: float
    checkpoint: str


def checkpoint_name(epoch: int, lr: float) -> str:
    """``EPOCH_LR.pt`` as the residual-coding seed names its files, e.g. ``12_0.1.pt``."""
    return f"{epoch}_{lr:g}.pt"


def augment_batch(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``shift`` pixels (zero-pixel fill) and horizontal flip.

    x: float32 (B, 1, S, S), already normalised; returns a new tensor of the same shape.
    """
    b, _, s, _ = x.shape
    background = float(x.amin())  # the normalised value of a 0 pixel
    padded = torch.nn.functional.pad(x, (shift,) * 4, value=background)
    offsets = torch.randint(0, 2 * shift + 1, (b, 2), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(b):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, dy : dy + s, dx : dx + s]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """PyTorch's deterministic algorithms on inside the block (an op without one raises), and
    the previous setting back after it."""
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` (eval mode) on tensors x (N, 1, S, S), y (N,)."""
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(y), batch_size):
            logits = model(x[start : start + batch_size])
            correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    return correct / max(1, len(y))


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainRecipe,
    generator: torch.Generator,
    *,
    after_step: Callable[[], None] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
    desc: str = "train",
    progress: bool = True,
    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> None:
    """The training loop of every recipe: SGD (Nesterov 0.9) with a one-cycle schedule.

    Args:
        model: the module to train in place (any parameters with ``requires_grad``).
        x: float32 (N, C, S, S) normalised images; y: int64 (N,) labels.
        recipe: epochs, batch size, peak lr, weight decay, augmentation.
        generator: seeds shuffling and augmentation.
        after_step: called after every optimizer step (pruning re-applies its masks here).
        on_epoch: called after every epoch with (epoch, mean train loss, seconds).
        desc: progress-bar label.
        loss: ``loss(logits, images, labels)`` -> scalar tensor of a batch (the images as the
            model saw them, augmented); None: cross-entropy.

    Raises:
        UserError: a batch loss is not finite (the run diverged; its model is left as it was
            before that step's update).
    """
    steps_per_epoch = int(np.ceil(len(y) / recipe.batch_size))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params,
        lr=recipe.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=recipe.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, epochs=recipe.epochs, steps_per_epoch=steps_per_epoch
    )
    cross_entropy = nn.CrossEntropyLoss()
    loss_fn = loss or (lambda logits, _images, labels: cross_entropy(logits, labels))
    for epoch in range(1, recipe.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"{desc} epoch {epoch}/{recipe.epochs}",
            disable=not progress,
            leave=False,
        )
        for step in bar:
            idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            xb = x[idx]
            if recipe.augment:
                xb = augment_batch(xb, 2, generator)
            batch_loss = loss_fn(model(xb), xb, y[idx])
            value = float(batch_loss.detach())
            if not math.isfinite(value):  # diverged: every later step would be NaN too
                raise UserError(
                    f"{desc}: the training loss became {value} at epoch {epoch}, step "
                    f"{step + 1} (peak lr {recipe.lr:g}): lower the learning rate"
                )
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            optimizer.step()
            schedule.step()
            if after_step is not None:
                after_step()
            total += value * len(idx)
        if on_epoch is not None:
            on_epoch(epoch, total / len(y), time.perf_counter() - start)


def fit_seeded(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: TrainRecipe, **kw
) -> None:
    """:func:`fit` with a fresh generator seeded by ``recipe.seed``; nothing when
    ``recipe.epochs`` is 0. ``kw``: ``fit``'s keyword arguments."""
    if recipe.epochs > 0:
        fit(model, x, y, recipe, torch.Generator().manual_seed(recipe.seed), **kw)


def train(
    spec: NetworkSpec,
    train_split: Split,
    monitor_split: Split,
    out_dir: Path,
    *,
    recipe: TrainRecipe | None = None,
    threads: int = 2,
    progress: bool = True,
) -> list[EpochLog]:
    """Train ``spec`` from scratch and write one checkpoint per epoch into ``out_dir``.

    Args:
        spec: the registry network.
        train_split: images to learn from (the 60k ``train`` split).
        monitor_split: images whose accuracy is logged per epoch (the ``search`` split; never
            used to pick a checkpoint, so the holdout stays clean).
        out_dir: directory for ``EPOCH_LR.pt`` files; created if missing.
        recipe: overrides ``spec.recipe`` (tests shorten it).
        threads: torch intra-op threads; the same count gives the same bits on the same CPU.

    Returns:
        One :class:`EpochLog` per epoch.
    """
    recipe = recipe or spec.recipe
    torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    model = spec.build()
    x = images_to_tensor(train_split.images, spec.input_size)
    y = torch.from_numpy(train_split.labels)
    x_mon = images_to_tensor(monitor_split.images, spec.input_size)
    y_mon = torch.from_numpy(monitor_split.labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = []

    def end_of_epoch(epoch: int, loss: float, seconds: float) -> None:
        path = out_dir / checkpoint_name(epoch, recipe.lr)
        save_state_dict(model.state_dict(), path)
        log = EpochLog(epoch, loss, accuracy(model, x_mon, y_mon), seconds, str(path))
        logs.append(log)
        if progress:
            tqdm.write(
                f"epoch {epoch}: loss {log.train_loss:.4f}  search acc "
                f"{100 * log.monitor_accuracy:.2f} %  ({log.seconds:.0f} s)  -> {path}"
            )

    with deterministic_algorithms():
        fit(
            model, x, y, recipe, generator, on_epoch=end_of_epoch, desc=spec.name, progress=progress
        )
    return logs


def trained_checkpoint(
    spec: NetworkSpec, checkpoint, cache_dir: Path, data_dir, threads: int
) -> Path:
    """The weights file of a Fashion-MNIST registry network, training it first if none exists.

    Weights come from :func:`~weightshare.networks.checkpoints.find_checkpoint` (``checkpoint``,
    the committed baseline, or the newest one under ``cache_dir``); when there are none, the
    network is trained with its documented recipe (as ``--mode train`` would) and the last
    epoch's file is returned.
    """
    path = find_checkpoint(spec.name, checkpoint, cache_dir)
    if path is not None:
        return path
    print(
        f"no trained weights for {spec.name}: training it now ({spec.recipe.epochs} epochs, "
        f"checkpoints in {checkpoint_dir(cache_dir, spec.name)})"
    )
    logs = train(
        spec,
        load_split("train", data_dir),
        load_split("search", data_dir),
        checkpoint_dir(cache_dir, spec.name),
        threads=threads,
    )
    return Path(logs[-1].checkpoint)
