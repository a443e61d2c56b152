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

Several drivers may run one study at once (a PostgreSQL storage): each evaluation is claimed in
the store first, so a (candidate, split) is evaluated by one driver and reused by the others;
the search budget counts every driver's trials; each driver picks the final points only once no
other driver is still running a trial, from the whole study, so all write the same report.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from weightshare.dse import confidence, sensitivity
from weightshare.dse.executor import Task, WorkerLost
from weightshare.dse.objective import ModelLayout
from weightshare.dse.sensitivity import Option
from weightshare.dse.space import FP32, Candidate, layer_choices, parse_choice, select_layers
from weightshare.dse.strategies import DEFAULT_OPTIMIZATION, STRATEGIES
from weightshare.dse.trials import Busy, Claim, Record, TrialStore
from weightshare.errors import UserError
from weightshare.types import K_MAX
from weightshare.validation import check_choice, check_float, check_int

SIZE_MODELS = ("fixed", "coded")
K_PARAM = IntDistribution(FP32, K_MAX)  # a layer's k as a trial param (0 = fp32)
SPARSITY_PARAM = FloatDistribution(0.0, 1.0)  # its sparsity, with --prune-grid


@dataclass(frozen=True)
class ExploreConfig:
    """How to explore (the settings that define the study are in :meth:`identity`).

    Attributes:
        optimization: a name of :data:`~weightshare.dse.strategies.STRATEGIES`.
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
        early_stopping: where only pass/fail matters (the polish, two-step's confirmations),
            stop scoring a candidate once it has failed its target for certain.
        max_final: feasible Pareto points rescored on the whole search split and the holdout.
        prune_grid: ``--prune-grid`` sparsities in [0, 1): each layer's choice becomes a
            (k, sparsity) pair, the layer magnitude-pruned without retraining before sharing
            (:func:`~weightshare.dse.space.layer_choices`); empty: sharing alone. A grid of 0
            alone is the same search and becomes empty (one study identity, today's).
        confirm_margin: ``--confirm-margin Z`` (>= 0): a whole-search-split score meets the
            target only when ``accuracy - Z * se >= target``, se the flip bound of the paired
            difference's standard error (:mod:`~weightshare.dse.confidence`); 0: no margin.
    """

    optimization: str = DEFAULT_OPTIMIZATION
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
    early_stopping: bool = True
    max_final: int = 6
    prune_grid: tuple[float, ...] = ()
    confirm_margin: float = 0.0

    def __post_init__(self) -> None:
        check_choice("--optimization", self.optimization, tuple(STRATEGIES))
        if STRATEGIES[self.optimization].needs_step_one and not self.with_local_optimization:
            raise UserError(
                f"--optimization {self.optimization} needs step 1: use --with_local_optimization 1"
            )
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
        check_int("polish_per_layer", self.polish_per_layer, 0)
        check_int("max_final", self.max_final, 1)
        for s in self.prune_grid:
            if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s < 1:
                raise UserError(f"every sparsity of --prune-grid must be in [0, 1); got {s!r}")
        if not any(self.prune_grid):  # only sparsity 0 prunes nothing: sharing alone, one study
            object.__setattr__(self, "prune_grid", ())
        check_float("--confirm-margin", self.confirm_margin, 0)

    def search_trials(self) -> int:
        if self.n_trials is not None:
            return self.n_trials
        return STRATEGIES[self.optimization].default_trials

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
            # recorded only when used: studies without the prune grid still resume
            **({"prune_grid": list(self.prune_grid)} if self.prune_grid else {}),
            **({"confirm_margin": self.confirm_margin} if self.confirm_margin else {}),
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
        self.grids = {
            n: layer_choices(config.k_grid, config.prune_grid, self.layout.n_weights[n])
            for n in self.explored
        }
        self.full_split = "search_full" if "search_full" in self.split_sizes else None
        self.full_target = math.nan
        self.best_bytes = math.inf  # smallest size confirmed feasible on the whole search split
        self.evaluations = 0
        self.surrogate = None  # the strategy's fitted damage -> drop map, if any (reported)
        self.options: dict[str, list[Option]] = {}  # step-1 options, if the strategy makes them
        self.base = math.nan
        self._one_layer: dict[str, dict[int, Record]] | None = None
        self._searched = 0  # COMPLETE trials of the search phase (progress)
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
        pass_fail: bool = False,
        *,
        show: bool = True,
    ) -> list[Record]:
        """Evaluate ``candidates`` on ``split`` (reusing stored results), storing new ones.

        Each is claimed first (:meth:`TrialStore.claim`), at most ``executor.capacity`` at a
        time, so drivers sharing the study split the work; one claimed by another driver is
        waited for once this driver's own are stored, then claimed again (its result is reused,
        or it is evaluated here if that driver died). ``params_of(candidate)``: the trial's
        params, name -> (value, distribution); default: ``k:LAYER`` of every explored layer.

        ``pass_fail``: only whether each candidate meets ``target`` matters, so (with
        ``early_stopping``) scoring stops once it has failed for certain, and an earlier
        evaluation that stopped so is reused. A candidate whose worker was lost for good is
        left out of the returned records. ``show``: report progress under ``phase`` (False:
        evaluations within another phase's, such as the search's confirmations).
        """
        stop_below = target if pass_fail and self.config.early_stopping else None
        params_of = params_of or self._k_params
        records: dict[int, Record] = {}
        todo = list(enumerate(candidates))
        while todo:
            queue, claims, busy = collections.deque(todo), {}, []
            while queue or claims:
                while queue and len(claims) < self.executor.capacity:
                    i, cand = queue.popleft()
                    got = self.store.claim(
                        phase, cand, split, partial=stop_below is not None, params=params_of(cand)
                    )
                    if isinstance(got, Record):
                        records[i] = got
                    elif isinstance(got, Busy):
                        busy.append((i, cand, got))
                    else:
                        claims[i] = got
                        self.executor.submit(Task(i, cand, split, stop_below))
                if not claims:
                    continue
                task, result = self.executor.wait()
                claim = claims.pop(task.tag)
                if isinstance(result, WorkerLost):
                    self.store.release(claim)  # lost for good: the phase goes on without it
                    continue
                records[task.tag] = self.store.complete(
                    claim, result, size_bytes=self.size_bytes(result), target=target
                )
                self.evaluations += 1
                self._note(phase, records[task.tag], len(records), len(candidates), show)
            for _, _, other in busy:
                self.store.wait(other)
            todo = [(i, cand) for i, cand, _ in busy]
        return [records[i] for i in sorted(records)]

    def _k_params(self, candidate: Candidate) -> dict:
        """``k:LAYER`` -> (k, 0 = fp32) of every explored layer, and with ``--prune-grid``
        ``sparsity:LAYER`` -> its sparsity: the trial's params, so the per-layer choice can be
        read in optuna-dashboard in every phase."""
        settings = candidate.settings()
        params = {}
        for layer in self.explored:
            k, sparsity = settings.get(layer, (FP32, 0.0))
            params[f"k:{layer}"] = (k, K_PARAM)
            if self.config.prune_grid:
                params[f"sparsity:{layer}"] = (sparsity, SPARSITY_PARAM)
        return params

    def _note(self, phase: str, record: Record, done: int, total: int, show: bool = True) -> None:
        """Report progress; the best ratio counts points feasible on the whole search split."""
        if record.split == (self.full_split or "search") and record.phase != "baseline":
            full = self.full_split is not None
            if self.meets_full_target(record) if full else record.accuracy >= self.target:
                self._new_best_ratio(record)
        if show:
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

    def full_bar(self, full: Record) -> float:
        """The top-1 a whole-search-split score must reach: the target plus ``--confirm-margin``
        times the flip bound of its standard error (the target itself without a margin)."""
        return confidence.required_accuracy(
            self.full_target, full.flip, full.n_images, self.config.confirm_margin
        )

    def meets_full_target(self, full: Record) -> bool:
        """Whether a whole-search-split score meets the target (less the margin). A score that
        stopped early failed the plain target for certain, so it fails with any margin too."""
        return not full.stopped_early and full.accuracy >= self.full_bar(full)

    def _confirmed(self, full: Record) -> bool:
        """Note a whole-search-split score; True when it meets the target there."""
        ok = self.meets_full_target(full)
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
            "confirm",
            [r.candidate for r in todo],
            self.full_split,
            target=self.full_target,
            pass_fail=True,
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
        self._note_confirmations()
        self.base = baseline["search"].accuracy
        outcome = Outcome(baseline, self.target)
        try:
            STRATEGIES[self.config.optimization].explore(self)
        except KeyboardInterrupt:
            outcome.interrupted = True
            self.store.release_open()  # the trials in flight: FAIL, claimable again
            self.executor.close()
        outcome.options = self.options
        if not outcome.interrupted:
            # the report covers the whole study: every driver sharing it is done searching
            self.store.wait_idle()
            self._note_confirmations()
        self._finish(outcome)
        if not outcome.interrupted:
            self.store.wait_idle()  # the others' last final evaluations are this one's too
        outcome.evaluations = sum(not r.reused for r in self.store.records())
        return outcome

    def _note_confirmations(self) -> None:
        """Note every whole-search-split score in the study (other drivers' too)."""
        if self.full_split:
            for r in self.store.records():
                if r.split == self.full_split and r.phase != "baseline":
                    self._confirmed(r)

    # --- what strategies call (weightshare.dse.strategies.base.Explorer) ---------------------

    def one_layer(self) -> dict[str, dict[int | str, Record]]:
        """Step 1: layer -> choice -> the Record of that layer shared alone, every (layer,
        choice) of the grids evaluated once (scored to the end: the damage curves must be
        complete). With ``--prune-grid`` a choice is a (k, sparsity) pair."""
        if self._one_layer is None:
            records = self.evaluate(
                "sensitivity",
                sensitivity.one_layer_candidates(self.grids),
                target=self.target,
                params_of=self._one_layer_params,
            )
            self._one_layer = {}
            for rec in records:
                ((layer, k),) = rec.candidate.k
                self._one_layer.setdefault(layer, {})[k] = rec
        return self._one_layer

    @property
    def capacity(self) -> int:
        """Evaluations the executor runs at once (its workers; 1 in-process)."""
        return self.executor.capacity

    def _one_layer_params(self, candidate: Candidate) -> dict:
        """The Optuna params of a step-1 trial: layer, k (and sparsity with a prune grid)."""
        cfg = self.config
        ((layer, value),) = candidate.k
        k, sparsity = parse_choice(value)
        params = {
            "layer": (layer, CategoricalDistribution(self.explored)),
            "k": (k, CategoricalDistribution(list(cfg.k_grid))),
        }
        if cfg.prune_grid:
            params["sparsity"] = (sparsity, CategoricalDistribution(list(cfg.prune_grid)))
        return params

    def passes(self, record: Record) -> bool:
        """Meets the target on the search images and, when the search split is scaled, on the
        whole search split too (confirmed now if it was not yet)."""
        return self.verdicts([record])[0]

    def verdicts(self, records: Sequence[Record]) -> list[bool]:
        """:meth:`passes` of each record, the missing whole-split confirmations evaluated
        together (in parallel on the workers); the verdicts do not depend on the order the
        workers finish in."""
        ok = [r.accuracy >= self.target for r in records]
        if not self.full_split:
            return ok
        full: dict[Candidate, Record | None] = {}
        todo = []
        for r, scaled_ok in zip(records, ok, strict=True):
            if scaled_ok and r.candidate not in full:
                full[r.candidate] = self.store.lookup(r.candidate, self.full_split, partial=True)
                if full[r.candidate] is None:
                    todo.append(r.candidate)
        if todo:
            scored = self.evaluate(
                "confirm", todo, self.full_split, target=self.full_target, pass_fail=True
            )
            full.update({f.candidate: f for f in scored})
        confirmed = {c: f is not None and self._confirmed(f) for c, f in full.items()}
        return [good and confirmed[r.candidate] for r, good in zip(records, ok, strict=True)]

    def search(self, choices: dict[str, list[int | str]], seeds: list[Candidate], sampler) -> None:
        """Ask/tell an Optuna sampler over per-layer choices, in batches of ``capacity`` trials.

        The budget counts every driver's COMPLETE and RUNNING trials of the phase; a driver that
        finds it spent waits for the others' running trials (one that fails frees its place).
        """
        cfg = self.config
        dists = {f"k:{layer}": CategoricalDistribution(ks) for layer, ks in choices.items()}
        self.store.study("search", sampler)
        self.store.fail_stale("search")
        total, start = cfg.search_trials(), time.monotonic()
        done = (TrialState.COMPLETE,)
        self._searched = len(self.store.study("search").get_trials(deepcopy=False, states=done))
        with self.store.locked():  # the seeds are enqueued once, whichever driver comes first
            self._enqueue(seeds, dists, total)

        def timed_out() -> bool:
            return cfg.timeout is not None and time.monotonic() - start >= cfg.timeout

        # Batch-synchronous ask/tell: ask up to `capacity` trials, evaluate them (and confirm the
        # promising ones), then tell them in trial order. The sampler then sees the same history
        # whatever order the workers finish in, so the same command gives the same study.
        while not timed_out():
            batch = []
            while len(batch) < self.executor.capacity and not timed_out():
                trial = self.store.ask_within("search", total)
                if trial is None:
                    break
                k_map = {
                    name[2:]: trial.suggest_categorical(name, d.choices)
                    for name, d in dists.items()
                }
                cand = Candidate.of(k_map)
                batch.append((trial, cand))
            if not batch:
                if not self.store.others_running("search"):
                    break  # the budget is spent
                self.store.wait_idle("search")  # another driver's trials: told, or failed
                continue
            left = self._search_batch(batch, total)
            while left:  # candidates claimed by a trial still running: wait, then claim again
                for _, _, other in left:
                    self.store.wait(other)
                if not all(other.mine for _, _, other in left):
                    sampler.reseed_rng()  # another driver drew the same: draw elsewhere from now
                left = self._search_batch([(t, c) for t, c, _ in left], total)

    def _enqueue(self, seeds: list[Candidate], dists: dict, total: int) -> None:
        """Enqueue the seeds in order, only those the budget can still ask: no seed is left
        WAITING by a run that ends on its trial budget; a rerun with a larger budget enqueues
        the rest."""
        study = self.store.study("search")
        asked = (TrialState.COMPLETE, TrialState.RUNNING)
        waiting = (TrialState.WAITING,)
        room = total - len(study.get_trials(deepcopy=False, states=asked))
        room -= len(study.get_trials(deepcopy=False, states=waiting))
        for cand in seeds:
            if room <= 0:
                break
            k_map = cand.as_dict()
            params = {name: k_map.get(name[2:], FP32) for name in dists}
            if all(v in dists[name].choices for name, v in params.items()):
                before = len(study.get_trials(deepcopy=False, states=waiting))
                study.enqueue_trial(params, skip_if_exists=True)
                room -= len(study.get_trials(deepcopy=False, states=waiting)) - before

    def _search_batch(self, batch: list, total: int) -> list:
        """Claim, evaluate, confirm and tell the asked trials of ``batch`` ((trial, candidate)
        pairs); return (trial, candidate, :class:`Busy`) for those whose candidate another trial
        claimed and still runs (another driver's, or an earlier one of this batch)."""
        claims, found, busy = {}, {}, []
        for trial, cand in batch:
            got = self.store.claim("search", cand, "search", trial=trial)
            if isinstance(got, Record):
                found[trial.number] = got
            elif isinstance(got, Busy):
                busy.append((trial, cand, got))
            else:
                claims[trial.number] = got
                self.executor.submit(Task(trial.number, cand, "search"))
        results = self._collect(len(claims))
        confirm = [
            cand
            for trial, cand in batch
            if trial.number in claims
            and not isinstance(results[trial.number], WorkerLost)
            and self._needs_confirm(results[trial.number])
        ]
        fulls = {r.candidate.key(): r for r in self._confirm_full(confirm)}
        for trial, cand in batch:
            if trial.number in found:
                self._tell(trial, cand, found[trial.number].result, True, total)
                continue
            if trial.number not in claims:
                continue
            result = results[trial.number]
            if isinstance(result, WorkerLost) or (cand in confirm and cand.key() not in fulls):
                self.store.release(claims[trial.number])  # lost: the budget asks another
                continue
            self.evaluations += 1
            self._tell(trial, cand, result, False, total)
        return busy

    def _confirm_full(self, candidates: list[Candidate]) -> list[Record]:
        """Score ``candidates`` on the whole search split to the end (the sampler is told it)."""
        if not candidates:
            return []
        return self.evaluate(
            "confirm", candidates, self.full_split, target=self.full_target, show=False
        )

    def _tell(self, trial, cand: Candidate, result, reused: bool, total: int) -> None:
        """Tell a search trial, judged on the whole search split when that score exists."""
        full = self.full_split and self.store.lookup(cand, self.full_split, partial=True)
        if full and full.stopped_early:
            # the sampler is told whole-split accuracies: score it to the end
            (full,) = self._confirm_full([cand]) or (None,)
        if full:
            self._confirmed(full)
        record = self.store.complete(
            Claim("search", trial),
            result,
            size_bytes=self.size_bytes(result),
            target=self.target,
            reused=reused,
            confirmed=(full.accuracy, self.full_bar(full)) if full else None,
        )
        self._searched += 1
        self._note("search", record, self._searched, total)

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
                "confirm",
                [r.candidate for r in front],
                self.full_split,
                target=self.full_target,
                pass_fail=True,
            )
            records = self.store.records()
        if self.full_split:
            full = {
                r.candidate.key(): r
                for r in records
                if r.split == self.full_split
                and r.phase != "baseline"
                and self.meets_full_target(r)
            }
            # the first record of each point: the evaluation that measured it, not a later
            # trial that reused its result (the search phase is seeded with earlier points)
            by_key: dict[str, Record] = {}
            for r in searched:
                by_key.setdefault(r.candidate.key(), r)
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
            complete = [r for r in searched if not r.stopped_early]
            outcome.closest = sorted(complete, key=lambda r: (-r.accuracy, self.size_bytes(r)))[:5]
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
            if self.store.lookup(r.candidate, self.full_split, partial=True) is None
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
