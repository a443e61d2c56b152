"""DPU's round with one part of the recipe changed: which difference to the seed costs accuracy?

Issue 12's open goal (DPU within 0.5 point of full updating at k = 0.01 on LeNet-300-100) asks
where our round (full update -> metric -> rewind -> sparse fine-tuning) loses to the seed's. This
script reruns one method over the benchmark's rounds with the round replaced for this process
only (``weightshare.updating.methods.METHODS``); everything else is the product's
``run_method`` (arrival order, shared init, update file, device decode, send-nothing rule).
It prints one JSON line: mean **search**-split accuracy over rounds 1 to the last (what a
setting is chosen on), mean holdout accuracy (reported, never used to choose), and both per
round.

    python bench/bench_dpu_variants.py                        # dpu as the product runs it
    python bench/bench_dpu_variants.py --step2-epochs 9       # longer sparse fine-tuning
    python bench/bench_dpu_variants.py --step2-lr 0.2         # a hotter sparse fine-tuning
    python bench/bench_dpu_variants.py --iterations 3         # the seed's iterative rewinding
    python bench/bench_dpu_variants.py --local next           # trajectory term, next batch's g
    python bench/bench_dpu_variants.py --allocation per-layer # k of every layer, not global
    python bench/bench_dpu_variants.py --shadow --no-reinit   # error feedback (see shadow)
    python bench/bench_dpu_variants.py --method fu --fu-from-init   # the seed's FU (same_init)
    python bench/bench_dpu_variants.py --best-epoch --method fu     # the seed's best epoch
    python bench/bench_dpu_variants.py --local decayed        # g with the weight-decay term
    python bench/bench_dpu_variants.py --rounds 30            # 1k ... 30k images
    python bench/bench_dpu_variants.py --trace                # search accuracy inside rounds
    python bench/bench_dpu_variants.py --rewind all           # step 1 only chooses the mask
    [--method dpu|gcpu|fu|rpu] [--epochs E] [--lam L] [--ratio K] [--seed S] [--out FILE]
    [--batch B] [--per-round N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli_edge import one_line_errors
from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.datasets import load_split
from weightshare.networks.tensors import images_to_tensor
from weightshare.networks.training import accuracy, fit
from weightshare.updating import methods, selection
from weightshare.updating.driver import (
    UpdateSettings,
    load_state,
    round_recipe,
    run_method,
    shared_init,
)
from weightshare.updating.masked_training import train_step
from weightshare.updating.schedule import RoundSchedule


def trajectory_contribution(model, data, recipe, names, pairing: str) -> dict[str, torch.Tensor]:
    """Step 1 (a full update with ``fit``) with a trajectory term the product does not use.

    The product (and the seed) accumulates ``sum_t -dw_t g_t``: each step's displacement times
    the loss gradient ``g_t`` that caused it, whose minibatch noise then counts as contribution
    (with plain SGD it is ``lr g_t^2``). ``pairing`` changes the gradient:

    - ``"next"``: ``g_{t+1}``, the *next* minibatch's gradient at the point ``dw_t`` reached
      (right-endpoint rule);
    - ``"decayed"``: ``g_t + wd * w_t``, the weight-decay term included, as the seed's SGD
      optimizer adds it to ``p.grad`` in place (``torch.optim.SGD`` leaves ``p.grad`` raw).

    Returns the contributions by name (float32, shaped like the weights ``names``).
    """
    params = dict(model.named_parameters())
    contrib = {n: torch.zeros_like(params[n]) for n in names}
    last = {n: params[n].detach().clone() for n in names}
    moved = {n: torch.zeros_like(params[n]) for n in names}  # "next": dw_{t-1}

    def after_step() -> None:
        with torch.no_grad():
            for n in names:
                step = params[n] - last[n]
                if pairing == "next":  # the grad is at the pre-step point: pair it with dw_{t-1}
                    contrib[n] -= moved[n] * params[n].grad
                    moved[n].copy_(step)
                else:
                    contrib[n] -= step * (params[n].grad + recipe.weight_decay * last[n])
                last[n].copy_(params[n])

    fit(model, data.x, data.y, recipe, data.generator, after_step=after_step, progress=False)
    return contrib


class BestEpoch:
    """The seed's per-epoch best-validation saving within a round: ``consider`` scores the model
    on the search split and keeps a copy when strictly better than any earlier candidate of the
    round; ``restore`` loads the best one (no-op when nothing was considered)."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model, self.x, self.y = model, x, y
        self.best, self.state = -1.0, None

    def consider(self, *_) -> None:
        score = accuracy(self.model, self.x, self.y)
        if score > self.best:
            self.best = score
            self.state = {n: t.detach().clone() for n, t in self.model.state_dict().items()}

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def contribution_round(args, lam: float, keeper=None, trace=None):
    """A DPU-style round with the knobs of ``args`` (defaults: the product's round).

    ``--shadow``: the server keeps a dense model that step 1 continues round after round (from
    the deployed model in round 1); the metric's displacement is measured from the deployed
    model, so what earlier rounds did not send can be selected later (error feedback). Run it
    with ``--no-reinit``: a re-init attempt would advance the shadow twice.

    ``keeper`` (a function of the model returning a :class:`BestEpoch`, ``--best-epoch``): the
    deployed candidate is the best on the search split of the rewound model and every epoch of
    the final sparse fine-tuning, as the seed's round.

    ``trace`` (a :class:`Trace`, ``--trace``): the search accuracy after step 1 and after the
    rewind of every round.
    """
    shadow: dict[str, torch.Tensor] = {}

    def round_(model, data) -> None:
        step1 = replace(data.recipe, epochs=args.step1_epochs or data.recipe.epochs)
        step2 = replace(
            data.recipe,
            epochs=args.step2_epochs or data.recipe.epochs,
            lr=args.step2_lr or data.recipe.lr,
        )
        start = methods._weights(model)
        names = tuple(start)
        round_start = {n: t.detach().clone() for n, t in model.state_dict().items()}
        if args.shadow and shadow:
            model.load_state_dict(shadow)
        if args.local == "same":
            local = train_step(model, data.x, data.y, step1, data.generator, track=names)
        else:
            local = trajectory_contribution(model, data, step1, names, args.local)
        if trace is not None:
            trace.mark("full", model)
        if args.shadow:
            shadow.clear()
            shadow.update({n: t.detach().clone() for n, t in model.state_dict().items()})
        total = sum(w.numel() for w in start.values())
        for i in range(args.iterations):
            final = i == args.iterations - 1
            count = (
                selection.budget(model, data.ratio)
                if final
                else max(1, int(data.ratio ** ((i + 1) / args.iterations) * total))
            )
            metric = selection.contribution_metric(start, methods._weights(model), local, lam)
            if args.allocation == "per-layer":
                masks = {}
                for name, values in metric.items():
                    share = max(1, int(count * values.numel() / total))
                    masks.update(selection.global_top({name: values}, share))
            else:
                masks = selection.global_top(metric, count)
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, mask in masks.items():
                    params[name].copy_(torch.where(mask, params[name], start[name]))
            if args.rewind != "unselected" and i == 0:  # after step 1 only (see --rewind)
                kept = () if args.rewind == "all" else names
                state = model.state_dict()
                model.load_state_dict({n: state[n] if n in kept else round_start[n] for n in state})
            local = {n: local[n] * masks[n] for n in local}  # the seed's masked local term
            recipe = step2 if args.iterations == 1 else replace(step2, epochs=args.iteration_epochs)
            if trace is not None and final:
                trace.mark("rewound", model)
            best = keeper(model) if keeper is not None and final else None
            if best is not None:
                best.consider()
            more = train_step(
                model,
                data.x,
                data.y,
                recipe,
                data.generator,
                masks=masks,
                anchor=start,
                track=() if final else names,
                on_epoch=None if best is None else best.consider,
            )
            for n in more:
                local[n] += more[n]
            if best is not None:
                best.restore()

    return round_


class Trace:
    """``--trace``: search accuracy (%) at the points of every round's training, one dict per
    training (re-init attempts and round 0 included): ``samples``, ``from_init``, ``start``,
    ``end``, and for the contribution methods ``full`` (after step 1) and ``rewound``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, init: dict) -> None:
        self.x, self.y, self.init = x, y, init
        self.rows: list[dict] = []

    def _score(self, model: torch.nn.Module) -> float:
        return round(100 * accuracy(model, self.x, self.y), 2)

    def mark(self, point: str, model: torch.nn.Module) -> None:
        self.rows[-1][point] = self._score(model)

    def wrap(self, method):
        """``method`` with its start and end scored."""

        def round_(model, data) -> None:
            state = model.state_dict()
            from_init = all(torch.equal(state[n], torch.as_tensor(v)) for n, v in self.init.items())
            self.rows.append(
                {"samples": len(data.y), "from_init": from_init, "start": self._score(model)}
            )
            method(model, data)
            self.mark("end", model)

        return round_


def best_epoch_full(keeper):
    """FU with ``--best-epoch``: every weight trained for ``2 E`` epochs, the best epoch kept."""

    def round_(model, data) -> None:
        best = keeper(model)
        double = replace(data.recipe, epochs=2 * data.recipe.epochs)
        train_step(model, data.x, data.y, double, data.generator, on_epoch=best.consider)
        best.restore()

    return round_


def best_epoch_random(keeper):
    """RPU with ``--best-epoch``: the product's random per-layer subset, trained for ``2 E``
    epochs, the best epoch kept."""

    def round_(model, data) -> None:
        best = keeper(model)
        start = methods._weights(model)
        masks = selection.random_per_layer(
            {n: w.shape for n, w in start.items()}, data.ratio, data.generator
        )
        double = replace(data.recipe, epochs=2 * data.recipe.epochs)
        train_step(
            model,
            data.x,
            data.y,
            double,
            data.generator,
            masks=masks,
            anchor=start,
            on_epoch=best.consider,
        )
        best.restore()

    return round_


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad flag values in one line (UserError) before any data is loaded."""
    ints = (
        ("--rounds", args.rounds, 1, 1000),
        ("--batch", 1 if args.batch is None else args.batch, 1, None),
        ("--per-round", args.per_round, 0, None),
        ("--initial", args.initial, 1, None),
        ("--epochs", args.epochs, 1, None),
        ("--iterations", args.iterations, 1, None),
        ("--iteration-epochs", args.iteration_epochs, 1, None),
    )
    for flag, value, low, high in ints:
        if value < low or (high is not None and value > high):
            allowed = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise UserError(f"{flag} must be an int {allowed}; got {value}")
    if not 0 < args.ratio <= 1:
        raise UserError(f"--ratio must be a float in (0, 1]; got {args.ratio}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default="lenet300_fashionmnist")
    p.add_argument("--method", choices=("dpu", "gcpu", "fu", "rpu"), default="dpu")
    p.add_argument("--ratio", type=float, default=0.01)
    p.add_argument("--lam", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=3, help="E of the product's round")
    p.add_argument("--step1-epochs", type=int, default=None, help="full update (default E)")
    p.add_argument("--step2-epochs", type=int, default=None, help="sparse fine-tuning (E)")
    p.add_argument("--step2-lr", type=float, default=None, help="its peak lr (the recipe's)")
    p.add_argument("--iterations", type=int, default=1, help="rewinding k^(i/n), i = 1..n")
    p.add_argument("--iteration-epochs", type=int, default=1, help="fine-tuning per iteration")
    p.add_argument("--local", choices=("same", "next", "decayed"), default="same")
    p.add_argument("--allocation", choices=("global", "per-layer"), default="global")
    p.add_argument("--shadow", action="store_true", help="step 1 continues a dense server model")
    p.add_argument("--fu-from-init", action="store_true", help="FU from the shared init")
    p.add_argument("--no-reinit", action="store_true")
    p.add_argument("--best-epoch", action="store_true", help="keep each round's best epoch")
    p.add_argument("--batch", type=int, default=None, help="minibatch (the product's 64)")
    p.add_argument("--initial", type=int, default=1000, help="images before round 0")
    p.add_argument("--per-round", type=int, default=1000, help="images added per round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument(
        "--rewind",
        choices=("unselected", "biases", "all"),
        default="unselected",
        help="after step 1, rewind the unselected weights (the seed), those and the biases, or "
        "everything (step 1 only chooses the mask); later --iterations rewind the unselected "
        "weights only, so their fine-tuning carries over",
    )
    p.add_argument("--trace", action="store_true", help="search accuracy inside each round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="append the JSON line here too")
    args = p.parse_args()
    check_args(args)
    torch.set_num_threads(1)
    spec = get_network(args.network)
    splits = [load_split(name) for name in ("train", "search", "holdout")]
    keeper = None
    xs = images_to_tensor(splits[1].images, spec.input_size)
    ys = torch.from_numpy(splits[1].labels)
    trace = Trace(xs, ys, shared_init(spec, args.seed)) if args.trace else None
    if args.best_epoch:

        def keeper(model):
            return BestEpoch(model, xs, ys)

        methods.METHODS["fu"] = best_epoch_full(keeper)
        methods.METHODS["rpu"] = best_epoch_random(keeper)
    methods.METHODS["dpu"] = contribution_round(args, args.lam, keeper, trace)
    methods.METHODS["gcpu"] = contribution_round(args, 1.0, keeper, trace)
    if args.fu_from_init:
        init, full = shared_init(spec, args.seed), methods.fu

        def fu_from_init(model, data) -> None:
            load_state(model, init)
            full(model, data)

        methods.METHODS["fu"] = fu_from_init
    if trace is not None:
        for name in ("dpu", "gcpu", "fu", "rpu"):
            methods.METHODS[name] = trace.wrap(methods.METHODS[name])
    settings = UpdateSettings(
        ratio=args.ratio,
        lam=args.lam,
        schedule=RoundSchedule(args.initial, args.per_round, args.rounds, args.seed),
        recipe=replace(
            round_recipe(spec, args.epochs, seed=args.seed),
            **({} if args.batch is None else {"batch_size": args.batch}),
        ),
        seed=args.seed,
        reinit=not args.no_reinit,
    )
    start = time.perf_counter()
    rounds = run_method(spec, args.method, settings, *splits, None, log=lambda _: None)
    update = [r for r in rounds if r.round >= 1]
    line = {
        "argv": sys.argv[1:],
        "mean_search": round(100 * sum(r.accuracy_search for r in update) / len(update), 2),
        "mean_holdout": round(100 * sum(r.accuracy_holdout for r in update) / len(update), 2),
        "search": [round(100 * r.accuracy_search, 2) for r in rounds],
        "holdout": [round(100 * r.accuracy_holdout, 2) for r in rounds],
        "skipped": sum(r.skipped for r in update),
        "seconds": round(time.perf_counter() - start),
    }
    if trace is not None:
        line["trace"] = trace.rows
    print(json.dumps(line))
    if args.out is not None:
        with args.out.open("a") as f:
            f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(one_line_errors(main))
