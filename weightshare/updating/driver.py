"""Rounds of partial updating: each round trains from what the device holds and sends a file.

For every method, per round ``r`` (``sizes[r]`` images of the seeded arrival order):

0. round 0 is the initial deployment: the device holds the shared init (it regenerates it from
   the seed) and receives a fully trained model (``fu``'s training, a full file), the same for
   every method but ``pruning``, which sends its sparse model every round;

1. the start point is the deployed model, or the shared random init when the data has more than
   doubled since the last (re-)initialisation (tried first; the warm start is the fallback), or
   the shared init for ``pruning``;
2. the method trains a copy (:mod:`.methods`);
3. the result is written as an update file against the base the device holds (the deployed
   model, the init it regenerates from the seed, or zeros for ``pruning``), and **decoded** as
   the device would: the accuracy reported is that of the device's model;
4. send nothing when the device's new model is not better than the deployed one on the search
   split (the device keeps its model; 0 bytes); otherwise the decoded model becomes deployed.

Accuracy (search and holdout) of the deployed model is recorded every round, skipped or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from weightshare.codecs.residual import fingerprint
from weightshare.codecs.update import decode_update, dense_bytes, encode_update
from weightshare.networks.datasets import Split
from weightshare.networks.registry import NetworkSpec, TrainRecipe
from weightshare.networks.tensors import images_to_tensor
from weightshare.networks.training import accuracy
from weightshare.outputs import write_bytes_atomic
from weightshare.updating import selection
from weightshare.updating.methods import METHODS, RoundData
from weightshare.updating.schedule import RoundSchedule, reinit_due


@dataclass(frozen=True)
class UpdateSettings:
    """Everything that decides a run's numbers (recorded in ``partial_update.json``).

    Attributes:
        ratio: updating ratio ``k`` in (0, 1].
        lam: DPU's ``lambda`` in [0, 1].
        schedule: data arrival.
        recipe: one training step for ``training.fit`` (``E`` epochs, batch, peak lr, decay).
        coding: ``lossless`` or ``grid16`` update values.
        reinit: re-initialise from the shared seed when the data has more than doubled.
        seed: seed of the shared init, the arrival order and the minibatches.
    """

    ratio: float
    lam: float
    schedule: RoundSchedule
    recipe: TrainRecipe = field(default_factory=lambda: TrainRecipe(epochs=3))
    coding: str = "lossless"
    reinit: bool = True
    seed: int = 0


@dataclass(frozen=True)
class RoundRecord:
    """One round of one method, as the device saw it.

    ``weights_changed`` counts conv/FC weights the file changes (at most ``budget`` for the
    partial methods); ``elements_changed`` counts every changed scalar (biases, BatchNorm
    included); ``bytes_sent`` is the update file's size (0 when skipped); ``device_sha256`` is
    the fingerprint of the device's model after the round.
    """

    round: int
    method: str
    samples: int
    base: str
    reinit: bool
    reinit_tried: bool
    skipped: bool
    weights_changed: int
    elements_changed: int
    budget: int
    bytes_sent: int
    dense_bytes: int
    accuracy_search: float
    accuracy_holdout: float
    candidate_search: float
    device_sha256: str
    file: str | None
    seconds: float


ROUND_BATCH = 64
"""Images per step of a round's training (the benchmark's setting)."""


def round_recipe(
    spec: NetworkSpec, epochs: int, lr: float | None = None, seed: int = 0
) -> TrainRecipe:
    """One training step of a round: the network's own recipe (SGD Nesterov, one-cycle schedule
    peaking at its lr, its weight decay) with ``epochs`` epochs, batch :data:`ROUND_BATCH`, no
    augmentation, and the run's seed; ``lr`` overrides the peak learning rate."""
    return replace(
        spec.recipe,
        epochs=epochs,
        batch_size=ROUND_BATCH,
        lr=spec.recipe.lr if lr is None else lr,
        augment=False,
        seed=seed,
    )


def state_of(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The model's state dict as numpy copies (every tensor, buffers included)."""
    return {n: t.detach().cpu().numpy().copy() for n, t in model.state_dict().items()}


def load_state(model: torch.nn.Module, state: dict[str, np.ndarray]) -> None:
    """Load a numpy state dict strictly."""
    model.load_state_dict({n: torch.from_numpy(np.array(v)) for n, v in state.items()})


def shared_init(spec: NetworkSpec, seed: int) -> dict[str, np.ndarray]:
    """The shared random init every device can regenerate: ``spec.build()`` after
    ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return state_of(spec.build())


def zero_state(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Zeros shaped like ``state`` (the base of the pruning baseline's files)."""
    return {n: np.zeros_like(v) for n, v in state.items()}


def run_method(
    spec: NetworkSpec,
    method: str,
    settings: UpdateSettings,
    train: Split,
    search: Split,
    holdout: Split,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[RoundRecord]:
    """All rounds of one method; writes ``out_dir/updates/<method>/round_NN.wsz`` when given."""
    init = shared_init(spec, settings.seed)
    model = spec.build()
    sizes = settings.schedule.sizes(len(train))
    order = settings.schedule.order(len(train))
    x_all = images_to_tensor(train.images[order[: sizes[-1]]], spec.input_size)
    y_all = torch.from_numpy(train.labels[order[: sizes[-1]]])
    xs, ys = images_to_tensor(search.images, spec.input_size), torch.from_numpy(search.labels)
    xh, yh = images_to_tensor(holdout.images, spec.input_size), torch.from_numpy(holdout.labels)
    names = selection.selectable(model)
    limit = selection.budget(model, settings.ratio)
    dense = dense_bytes(init)

    def score(state, x, y) -> float:
        load_state(model, state)
        return accuracy(model, x, y)

    deployed, deployed_search = init, score(init, xs, ys)
    size_at_init = sizes[0]
    records = []
    for r, n in enumerate(sizes):
        start_time = time.perf_counter()
        due = settings.reinit and r > 0 and reinit_due(n, size_at_init)
        if method == "pruning":
            attempts = [("zero", init, zero_state(init))]
        else:
            attempts = [("init", init, init)] if due else []
            attempts.append(("deployed", deployed, deployed))
        if due:
            size_at_init = n
        chosen = None
        for base_kind, start, base in attempts:
            generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + r)
            data = RoundData(
                x_all[:n], y_all[:n], settings.recipe, settings.ratio, settings.lam, generator
            )
            load_state(model, start)
            METHODS["fu" if r == 0 and method != "pruning" else method](model, data)
            blob, changed = encode_update(
                state_of(model),
                base,
                coding=settings.coding,
                base_kind=base_kind,
                network=spec.name,
                meta={"round": r, "method": method},
            )
            device = decode_update(blob, base).state
            candidate = score(device, xs, ys)
            chosen = (base_kind, blob, changed, device, candidate)
            if candidate > deployed_search:
                break
        base_kind, blob, changed, device, candidate = chosen
        skipped = not candidate > deployed_search
        path = None
        if not skipped:
            deployed, deployed_search = device, candidate
            if out_dir is not None:
                path = Path("updates") / method / f"round_{r:02d}.wsz"
                write_bytes_atomic(out_dir / path, blob)
        record = RoundRecord(
            round=r,
            method=method,
            samples=n,
            base=base_kind,
            reinit=not skipped and base_kind == "init",
            reinit_tried=due,
            skipped=skipped,
            weights_changed=0 if skipped else sum(changed.get(nm, 0) for nm in names),
            elements_changed=0 if skipped else sum(changed.values()),
            budget=limit,
            bytes_sent=0 if skipped else len(blob),
            dense_bytes=dense,
            accuracy_search=deployed_search,
            accuracy_holdout=score(deployed, xh, yh),
            candidate_search=candidate,
            device_sha256=fingerprint(deployed),
            file=None if path is None else str(path),
            seconds=time.perf_counter() - start_time,
        )
        records.append(record)
        log(
            f"{method:8s} round {r:2d}  {n:6d} samples  "
            f"{'skipped' if skipped else f'{record.weights_changed:7d} weights':>15s}  "
            f"{record.bytes_sent:8d} B  search {100 * record.accuracy_search:6.2f} %  "
            f"holdout {100 * record.accuracy_holdout:6.2f} %"
            f"{'  reinit' if record.reinit else ''}  ({record.seconds:.0f} s)"
        )
    return records


def settings_json(settings: UpdateSettings) -> dict:
    """The settings as plain JSON."""
    out = asdict(settings)
    out["lambda"] = out.pop("lam")
    return out
