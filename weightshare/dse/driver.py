"""The exploration driver: phases, budgets and the final choice, over a resumable store.

Phases (each a study in the :class:`~weightshare.dse.trials.TrialStore`):

1. ``baseline``: the fp32 model on ``search`` (scaled), ``search_full`` and ``holdout``.
2. ``sensitivity`` (step 1, when enabled): each layer alone at each k of its grid.
3. ``knapsack`` then ``polish`` (two-step only): knapsack solutions over the per-layer options
   at damage budgets searched on real results (the summed one-layer KL mapped to a top-1 drop
   by a power law refitted after each evaluation, :mod:`weightshare.dse.surrogate`); then, from
   the best passing point, one-layer moves one option smaller, best size saved per predicted
   damage first, each verified for real, until none passes.
4. ``search``: an Optuna sampler (NSGA-II or TPE) over the per-layer choices with the accuracy
   target as a constraint (``trial.set_constraint``), asked and told on this driver while the
   executor's workers evaluate; two-step seeds it with its knapsack and polish points through
   ``enqueue_trial``.
5. ``final``: the feasible Pareto points rescored on the whole search split, then the holdout.

Evaluations already in the store are never repeated: a rerun of the same command resumes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution

from weightshare.dse import combine, sensitivity, surrogate
from weightshare.dse.executor import Task, WorkerLost
from weightshare.dse.objective import ModelLayout
from weightshare.dse.sensitivity import Option
from weightshare.dse.space import FP32, Candidate, layer_grid, select_layers
from weightshare.dse.trials import Record, TrialStore
from weightshare.errors import UserError
from weightshare.types import K_MAX
from weightshare.validation import check_choice, check_float, check_int

OPTIMIZATIONS = ("two_step_optimization", "nsga2", "tpe", "paper")
SIZE_MODELS = ("fixed", "coded")
# The seed's grid: the 81 distinct ints of numpy.logspace(1, 10, 100, base=2).
PAPER_K_GRID = tuple(int(k) for k in np.unique(np.logspace(1, 10, 100, base=2).astype(int)))
MAX_BUDGETS = 16  # knapsack budgets tried by the bracket search


@dataclass(frozen=True)
class ExploreConfig:
    """How to explore (the settings that define the study are in :meth:`identity`).

    Attributes:
        optimization: one of ``OPTIMIZATIONS``.
        with_local_optimization: run step 1 (per-layer sensitivity).
        accuracy_ratio: target = ratio x baseline accuracy on the search images.
        k_grid: candidate k values (each layer uses those <= its weight count).
        skip_layers: regex of layers kept fp32, or None.
        size_model: objective, ``fixed`` (the seed's indices + fp32 codebooks) or ``coded``.
        n_trials: trials of the ``search`` phase (None: the optimization's default).
        timeout: seconds for the ``search`` phase (None: no limit).
        population_size: NSGA-II population.
        seed: sampler seed.
        polish_per_layer: most one-layer moves the polish evaluates, per explored layer.
        max_final: feasible Pareto points rescored on the whole search split and the holdout.
    """

    optimization: str = "two_step_optimization"
    with_local_optimization: bool = True
    accuracy_ratio: float = 0.99
    k_grid: tuple[int, ...] = ()
    skip_layers: str | None = None
    size_model: str = "coded"
    n_trials: int | None = None
    timeout: float | None = None
    population_size: int = 20
    seed: int = 0
    polish_per_layer: int = 3
    max_final: int = 6

    def __post_init__(self) -> None:
        check_choice("--optimization", self.optimization, OPTIMIZATIONS)
        if self.optimization == "paper" and not self.with_local_optimization:
            raise UserError("--optimization paper needs step 1: use --with_local_optimization 1")
        check_float("--accuracy-ratio", self.accuracy_ratio, 0, 1, low_open=True)
        if not self.k_grid:
            raise UserError("--k-grid must hold at least one k; got an empty grid")
        for k in self.k_grid:
            check_int("every k of --k-grid", k, 1, K_MAX)
        check_choice("--size-model", self.size_model, SIZE_MODELS)
        if self.n_trials is not None:
            check_int("--n-trials", self.n_trials, 0)
        if self.timeout is not None:
            check_float("--timeout", self.timeout, 0, low_open=True)
        check_int("--population-size", self.population_size, 2)
        check_int("--seed", self.seed, 0)
        check_int("calibration_rounds", self.calibration_rounds, 0)
        check_int("max_final", self.max_final, 1)

    def search_trials(self) -> int:
        if self.n_trials is not None:
            return self.n_trials
        return 10_000 if self.optimization == "paper" else 100

    def identity(self) -> dict:
        """Settings a resumed study must share (budgets and workers may change)."""
        return {
            "optimization": self.optimization,
            "with_local_optimization": self.with_local_optimization,
            "accuracy_ratio": self.accuracy_ratio,
            "k_grid": list(self.k_grid),
            "skip_layers": self.skip_layers,
            "size_model": self.size_model,
            "seed": self.seed,
            "population_size": self.population_size,
        }


@dataclass
class Outcome:
    """What the exploration found (the report turns it into files).

    ``best`` is None when no point met the target; ``closest`` then lists the most accurate
    points seen.
    """

    baseline: dict[str, Record]
    target: float
    options: dict[str, list[Option]] = field(default_factory=dict)
    pareto: list[Record] = field(default_factory=list)
    final: dict[str, dict[str, Record]] = field(default_factory=dict)  # key -> split -> record
    best: Record | None = None
    closest: list[Record] = field(default_factory=list)
    evaluations: int = 0
    interrupted: bool = False


class Driver:
    """Runs one exploration.

    Args:
        config: the exploration settings.
        store: the trial store (already checked against the settings).
        executor: a :class:`~weightshare.dse.executor.LocalExecutor` or ``RayExecutor``.
        progress: called with (phase, done, total, best_ratio) after each evaluation.
    """

    def __init__(
        self, config: ExploreConfig, store: TrialStore, executor, progress: Callable | None = None
    ):
        self.config = config
        self.store = store
        self.executor = executor
        self.progress = progress or (lambda *a: None)
        self.info = info = executor.describe()
        self.layout = ModelLayout(info.n_weights, info.n_unclustered)
        self.split_sizes = info.splits
        self.explored = select_layers(self.layout.n_weights, config.skip_layers)
        grid = config.k_grid
        self.grids = {n: layer_grid(grid, self.layout.n_weights[n]) for n in self.explored}
        self.full_split = "search_full" if "search_full" in self.split_sizes else None
        self.full_target = math.nan
        self.best_bytes = math.inf  # smallest size confirmed feasible on the whole search split
        self.evaluations = 0
        self.surrogate: surrogate.PowerLaw | None = None
        self.best_ratio = math.nan
        self.target = math.nan

    # --- sizes -----------------------------------------------------------------------------

    def layer_bits(self, result) -> dict:
        """Bits per clustered layer of a Record or EvalResult under the chosen size model."""
        return result.bits_coded if self.config.size_model == "coded" else result.bits_fixed

    def coded_bytes(self, result) -> float:
        """Coded size of a Record or EvalResult in bytes: its model file's exact size when the
        evaluator knew it, else its layers' coded chunks plus 32 bits per other scalar."""
        if result.file_bytes is not None:
            return float(result.file_bytes)
        return self.layout.model_bits(result.bits_coded) / 8

    def size_bytes(self, result) -> float:
        """The size the search minimises, in bytes: :meth:`coded_bytes` (``coded``) or the
        seed's fixed-length model (``fixed``)."""
        if self.config.size_model == "coded":
            return self.coded_bytes(result)
        return self.layout.model_bits(result.bits_fixed) / 8

    # --- evaluation with reuse ---------------------------------------------------------------

    def evaluate(
        self,
        phase: str,
        candidates: Sequence[Candidate],
        split: str = "search",
        params_of: Callable | None = None,
        target: float | None = None,
    ) -> list[Record]:
        """Evaluate ``candidates`` on ``split`` (reusing stored results), storing new ones."""
        records: dict[int, Record] = {}
        tasks = []
        for i, cand in enumerate(candidates):
            found = self.store.lookup(cand, split)
            if found is not None:
                records[i] = found
            else:
                tasks.append(Task(i, cand, split))
        for task in tasks:
            self.executor.submit(task)
        while self.executor.pending():
            task, result = self.executor.wait()
            if isinstance(result, WorkerLost):
                continue  # lost for good: the phase goes on without it
            params = params_of(task.candidate) if params_of else None
            dists = None if params is None else {k: v[1] for k, v in params.items()}
            records[task.tag] = self.store.add(
                phase,
                task.candidate,
                result,
                size_bytes=self.size_bytes(result),
                target=target,
                params=None if params is None else {k: v[0] for k, v in params.items()},
                distributions=dists,
            )
            self.evaluations += 1
            self._note(phase, records[task.tag], len(records), len(candidates))
        return [records[i] for i in sorted(records)]

    def _note(self, phase: str, record: Record, done: int, total: int) -> None:
        """Report progress; the best ratio counts points feasible on the whole search split."""
        if record.split == (self.full_split or "search") and record.phase != "baseline":
            target = self.full_target if self.full_split else self.target
            if record.accuracy >= target:
                self._new_best_ratio(record)
        self.progress(phase, done, total, self.best_ratio)

    # --- confirmation on the whole search split ----------------------------------------------

    def _needs_confirm(self, result) -> bool:
        """A point feasible on the scaled split that would become the smallest feasible one:
        confirm it on the whole search split before trusting it."""
        return (
            self.full_split is not None
            and result.accuracy >= self.target
            and self.size_bytes(result) < self.best_bytes
        )

    def _confirmed(self, full: Record) -> bool:
        """Note a whole-search-split score; True when it meets the target there."""
        ok = full.accuracy >= self.full_target
        if ok:
            self.best_bytes = min(self.best_bytes, self.size_bytes(full))
            self._new_best_ratio(full)
        return ok

    def _new_best_ratio(self, record: Record) -> None:
        ratio = self.layout.ratio_layers(record.bits_fixed)
        if math.isnan(self.best_ratio) or ratio > self.best_ratio:
            self.best_ratio = ratio

    def _confirm_batch(self, records: Sequence[Record]) -> None:
        todo = sorted((r for r in records if self._needs_confirm(r)), key=self.size_bytes)
        for full in self.evaluate(
            "confirm", [r.candidate for r in todo], self.full_split, target=self.full_target
        ):
            self._confirmed(full)

    # --- phases ------------------------------------------------------------------------------

    def run(self) -> Outcome:
        baseline_splits = [s for s in ("search", "search_full", "holdout") if s in self.split_sizes]
        fp32 = Candidate(())
        baseline = {s: self.evaluate("baseline", [fp32], s)[0] for s in baseline_splits}
        self.target = self.config.accuracy_ratio * baseline["search"].accuracy
        if self.full_split:
            self.full_target = self.config.accuracy_ratio * baseline[self.full_split].accuracy
            for r in self.store.records():
                if r.split == self.full_split and r.phase != "baseline":
                    self._confirmed(r)
        outcome = Outcome(baseline, self.target)
        try:
            self._explore(outcome, baseline["search"].accuracy)
        except KeyboardInterrupt:
            outcome.interrupted = True
        self._finish(outcome)
        outcome.evaluations = sum(not r.reused for r in self.store.records())
        return outcome

    def _explore(self, outcome: Outcome, base: float) -> None:
        cfg = self.config
        max_loss = base - self.target
        one_layer: dict[str, dict[int, Record]] = {}
        if cfg.with_local_optimization and cfg.optimization in ("two_step_optimization", "paper"):
            cands = sensitivity.one_layer_candidates(self.grids)
            records = self.evaluate(
                "sensitivity",
                cands,
                target=self.target,
                params_of=lambda c: {
                    "layer": (c.k[0][0], CategoricalDistribution(self.explored)),
                    "k": (c.k[0][1], CategoricalDistribution(list(cfg.k_grid))),
                },
            )
            for rec in records:
                ((layer, k),) = rec.candidate.k
                one_layer.setdefault(layer, {})[k] = rec
        if cfg.optimization == "paper":
            accs = {
                layer: {k: r.accuracy for k, r in by_k.items()} for layer, by_k in one_layer.items()
            }
            kept, _ = sensitivity.paper_options(accs, base, cfg.accuracy_ratio)
            choices = {layer: kept.get(layer, [FP32]) for layer in self.explored}
            self._search(
                choices,
                seeds=[],
                sampler=optuna.samplers.NSGAIISampler(population_size=100, seed=cfg.seed),
            )
            return
        if one_layer:
            outcome.options = {
                layer: sensitivity.pareto_options(
                    [Option(k, self.layer_bits(r)[layer], r.kl) for k, r in by_k.items()],
                    self.layout.n_weights[layer] * 32.0,
                )
                for layer, by_k in one_layer.items()
            }
        if cfg.optimization == "two_step_optimization" and outcome.options:
            seeds, cap = self._knapsack_and_polish(outcome.options, base, max_loss)
            choices = {
                layer: [o.k for o in opts if o.damage <= cap]
                for layer, opts in outcome.options.items()
            }
            sampler = optuna.samplers.NSGAIISampler(
                population_size=cfg.population_size, seed=cfg.seed
            )
        else:
            full = {layer: [FP32, *grid] for layer, grid in self.grids.items()}
            choices = full
            seeds = []  # two-step without step 1: seed with one k for every layer
            if cfg.optimization == "two_step_optimization":
                uniform = (
                    Candidate.of({n: k for n in self.explored if k in self.grids[n]})
                    for k in (256, 64, 32, 16, 8, 4)
                )
                seeds = [c for c in uniform if c.k]
            sampler = (
                optuna.samplers.TPESampler(seed=cfg.seed)
                if cfg.optimization == "tpe"
                else optuna.samplers.NSGAIISampler(
                    population_size=cfg.population_size, seed=cfg.seed
                )
            )
        self._search(choices, seeds, sampler)

    def _passes(self, record: Record) -> bool:
        """Meets the target on the search images and, when the search split is scaled, on the
        whole search split too (confirmed now if it was not yet)."""
        if record.accuracy < self.target:
            return False
        if not self.full_split:
            return True
        full = self.store.lookup(record.candidate, self.full_split)
        if full is None:
            scored = self.evaluate(
                "confirm", [record.candidate], self.full_split, target=self.full_target
            )
            if not scored:
                return False
            full = scored[0]
        return self._confirmed(full)

    def _knapsack_and_polish(
        self, options: dict[str, list[Option]], base: float, max_loss: float
    ) -> tuple[list[Candidate], float]:
        """Two-step's step 2: knapsack budgets searched on real results, then the polish.

        Returns:
            (every candidate evaluated, the largest one-layer damage worth keeping as a
            search choice: twice the largest passing budget, or inf when none passed).
        """
        law, outcomes, pairs = surrogate.PRIOR, [], []
        verdicts: dict[Candidate, bool] = {}
        best: Record | None = None
        for _ in range(MAX_BUDGETS):
            budget = surrogate.next_budget(outcomes, law, max_loss)
            if budget is None:
                break
            cand = combine.solve_knapsack(options, budget)
            if cand not in verdicts:
                scored = self.evaluate("knapsack", [cand], target=self.target)
                if not scored:
                    break
                (record,) = scored
                verdicts[cand] = self._passes(record)
                pairs.append((combine.predicted_damage(options, cand), base - record.accuracy))
                law = surrogate.fit_power_law(pairs)
                if verdicts[cand] and (
                    best is None or self.size_bytes(record) < self.size_bytes(best)
                ):
                    best = record
            outcomes.append((budget, verdicts[cand]))
        self.surrogate = law
        lo, _ = surrogate.bracket(outcomes)
        if best is None:
            return list(verdicts), math.inf
        # polish: one layer one option smaller, best bits saved per predicted damage first
        failed: set[tuple[str, int]] = set()
        left = self.config.polish_per_layer * len(options)
        moved = True
        while moved and left > 0:
            moved = False
            for cand in combine.polish_moves(options, best.candidate, excluded=frozenset(failed)):
                if left <= 0:
                    break
                left -= 1
                scored = self.evaluate("polish", [cand], target=self.target)
                if not scored:
                    continue
                (record,) = scored
                verdicts[cand] = self._passes(record)
                if verdicts[cand]:
                    best, moved = record, True
                    break
                (change,) = set(cand.k) - set(best.candidate.k)
                failed.add(change)
        return list(verdicts), 2 * lo if lo > 0 else math.inf

    def _search(self, choices: dict[str, list[int]], seeds: list[Candidate], sampler) -> None:
        """Ask/tell an Optuna sampler over per-layer choices, in batches of ``capacity`` trials."""
        cfg = self.config
        dists = {f"k:{layer}": CategoricalDistribution(ks) for layer, ks in choices.items()}
        study = self.store.study("search", sampler)
        self.store.fail_stale("search")
        for cand in seeds:
            k_map = cand.as_dict()
            params = {f"k:{layer}": k_map.get(layer, FP32) for layer in choices}
            if all(v in dists[name].choices for name, v in params.items()):
                study.enqueue_trial(params, skip_if_exists=True)
        complete = (optuna.trial.TrialState.COMPLETE,)
        done = len(study.get_trials(deepcopy=False, states=complete))
        total, start = cfg.search_trials(), time.monotonic()
        in_flight: dict[int, optuna.Trial] = {}

        def budget_left() -> bool:
            timed_out = cfg.timeout is not None and time.monotonic() - start >= cfg.timeout
            return not timed_out and done + len(in_flight) < total

        def finish(trial, cand, result, reused: bool) -> None:
            """Tell a trial, judged on the whole search split when that score exists."""
            nonlocal done
            full = self.full_split and self.store.lookup(cand, self.full_split)
            if full:
                self._confirmed(full)
            record = self.store.tell(
                "search",
                trial,
                cand,
                result,
                size_bytes=self.size_bytes(result),
                target=self.target,
                reused=reused,
                confirmed=(full.accuracy, self.full_target) if full else None,
            )
            done += 1
            self._note("search", record, done, total)

        # Batch-synchronous ask/tell: ask up to `capacity` trials, evaluate them (and confirm the
        # promising ones), then tell them in trial order. The sampler then sees the same history
        # whatever order the workers finish in, so the same command gives the same study.
        try:
            while budget_left():
                batch = []
                while len(batch) < self.executor.capacity and budget_left():
                    trial = self.store.ask("search")
                    cand = Candidate.of(
                        {
                            name[2:]: trial.suggest_categorical(name, d.choices)
                            for name, d in dists.items()
                        }
                    )
                    found = self.store.lookup(cand, "search")
                    if found is not None:
                        finish(trial, cand, found.result, True)
                        continue
                    in_flight[trial.number] = trial
                    batch.append((trial, cand))
                    self.executor.submit(Task(trial.number, cand, "search"))
                results = self._collect(len(batch))
                confirm = [
                    (t, c)
                    for t, c in batch
                    if not isinstance(results[t.number], WorkerLost)
                    and self._needs_confirm(results[t.number])
                    and self.store.lookup(c, self.full_split) is None
                ]
                for trial, cand in confirm:
                    self.executor.submit(Task(trial.number, cand, self.full_split))
                fulls = self._collect(len(confirm))
                for trial, cand in batch:
                    result = results[trial.number]
                    full = fulls.get(trial.number)
                    if isinstance(result, WorkerLost) or isinstance(full, WorkerLost):
                        self.store.fail("search", in_flight.pop(trial.number))
                        continue
                    self.evaluations += 1 + (full is not None)
                    if full is not None:
                        self.store.add(
                            "confirm",
                            cand,
                            full,
                            size_bytes=self.size_bytes(full),
                            target=self.full_target,
                        )
                    finish(in_flight.pop(trial.number), cand, result, False)
        except KeyboardInterrupt:
            for trial in in_flight.values():
                self.store.fail("search", trial)
            self.executor.close()
            raise

    def _collect(self, n: int) -> dict:
        """The next ``n`` finished tasks of the executor, as tag -> result."""
        out = {}
        while len(out) < n:
            task, result = self.executor.wait()
            out[task.tag] = result
        return out

    # --- final choice --------------------------------------------------------------------------

    def _finish(self, outcome: Outcome) -> None:
        """Pick the best point and score the front on the holdout split.

        Feasible means meeting the target on the whole search split: confirmed points when the
        search used a scaled split (if none was confirmed, the feasible points of the scaled
        split are rescored smallest first until one passes), the search points otherwise.
        """
        records = self.store.records()
        searched = [r for r in records if r.split == "search" and r.phase != "baseline"]
        feasible = [r for r in searched if r.accuracy >= self.target]
        if self.full_split and feasible and not outcome.interrupted:
            self._rescore_until_one_passes(feasible)
            # the scaled split's front, confirmed too, so the reported front is not one point
            front = pareto_front(feasible, self.size_bytes)[: self.config.max_final]
            self.evaluate(
                "confirm", [r.candidate for r in front], self.full_split, target=self.full_target
            )
            records = self.store.records()
        if self.full_split:
            full = {
                r.candidate.key(): r
                for r in records
                if r.split == self.full_split
                and r.phase != "baseline"
                and r.accuracy >= self.full_target
            }
            by_key = {r.candidate.key(): r for r in searched}
            # a run interrupted between storing a confirmation and telling its trial leaves a
            # whole-split score without its scaled-split one: such points are not reported
            confirmed = [f for key, f in full.items() if key in by_key]
            front = pareto_front(confirmed, self.size_bytes)
            outcome.pareto = [by_key[f.candidate.key()] for f in front]
            finals = {
                r.candidate.key(): {"search": by_key[r.candidate.key()], self.full_split: r}
                for r in front
            }
        else:
            outcome.pareto = pareto_front(feasible, self.size_bytes)
            finals = {r.candidate.key(): {"search": r} for r in outcome.pareto}
        if not outcome.pareto:
            outcome.closest = sorted(searched, key=lambda r: (-r.accuracy, self.size_bytes(r)))[:5]
            return
        outcome.best = outcome.pareto[0]
        if outcome.interrupted:
            return
        scored = outcome.pareto[: self.config.max_final]
        for r, h in zip(
            scored, self.evaluate("final", [r.candidate for r in scored], "holdout"), strict=True
        ):
            outcome.final[r.candidate.key()] = {**finals[r.candidate.key()], "holdout": h}

    def _rescore_until_one_passes(self, feasible: Sequence[Record]) -> None:
        """Rescore scaled-split-feasible points on the whole search split, smallest first and a
        batch at a time, until one of them (or an earlier confirmed point) meets the target."""
        ordered = [
            r
            for r in pareto_front(feasible, self.size_bytes, dominated=True)
            if self.store.lookup(r.candidate, self.full_split) is None
        ]
        step = self.config.max_final
        for start in range(0, len(ordered), step):
            if math.isfinite(self.best_bytes):
                return
            self._confirm_batch(ordered[start : start + step])


def pareto_front(
    records: Sequence[Record], size_of: Callable[[Record], float], *, dominated: bool = False
) -> list[Record]:
    """Records sorted by increasing size, one per candidate: only the non-dominated ones in
    (size down, accuracy up), or all of them with ``dominated=True``."""
    unique = {}
    for r in records:
        unique.setdefault(r.candidate.key(), r)
    ordered = sorted(unique.values(), key=lambda r: (size_of(r), -r.accuracy))
    if dominated:
        return ordered
    front, best_acc = [], -1.0
    for r in ordered:
        if r.accuracy > best_acc:
            front.append(r)
            best_acc = r.accuracy
    return front
