"""search the k of every layer for the smallest model that meets the accuracy target

Two-step heuristic (per-layer KL sensitivity, knapsack budgets searched on real results, a
polish, then NSGA-II), plain NSGA-II / TPE, or the seed's algorithm (``paper``), evaluated on
Ray workers and kept in a resumable Optuna study (``DIR/study.db``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

from weightshare.dse.strategies import DEFAULT_OPTIMIZATION, OPTIMIZATIONS, STRATEGIES
from weightshare.errors import UserError
from weightshare.outputs import check_output_dir, disk_full_as_error
from weightshare.validation import check_int

EXIT_INFEASIBLE = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``exploration`` flags (the seed's names kept: ``--optimization``,
    ``--with_local_optimization``)."""
    g = parser.add_argument_group("exploration")
    g.add_argument(
        "--optimization",
        default=DEFAULT_OPTIMIZATION,
        metavar="NAME",
        help=f"search algorithm, one of {', '.join(OPTIMIZATIONS)} "
        f"(default: {DEFAULT_OPTIMIZATION}; 'paper' = the seed's, bugs fixed)",
    )
    g.add_argument(
        "--with_local_optimization",
        type=int,
        choices=(0, 1),
        default=1,
        help="1: step 1, each layer alone at each k (default); 0: skip it",
    )
    g.add_argument(
        "--mlperf-category",
        choices=("heavy", "light"),
        default=None,
        help="accuracy target 99 %% (heavy) or 98 %% (light) of fp32; "
        "default: the network's category",
    )
    g.add_argument(
        "--accuracy-ratio",
        type=float,
        default=None,
        metavar="R",
        help="target = R x fp32 accuracy, overrides --mlperf-category",
    )
    g.add_argument(
        "--k-min", type=int, default=2, metavar="K", help="smallest k searched (default 2)"
    )
    g.add_argument(
        "--k-max",
        type=int,
        default=None,
        metavar="K",
        help="largest k searched (default: 256, or the largest of --k-grid / the paper's grid)",
    )
    g.add_argument(
        "--k-grid",
        default=None,
        metavar="K1,K2,...",
        help="explicit k grid (default: powers of two 2..256 and the values between; "
        "paper: the seed's 81 values 2..1024)",
    )
    g.add_argument(
        "--prune-grid",
        default=None,
        metavar="S1,S2,...",
        help="joint retraining-free search: each layer's choice becomes (k, sparsity), the layer "
        "magnitude-pruned to a sparsity of this grid (e.g. 0,0.5,0.7,0.8,0.9) before its "
        "survivors are shared; sizes are the sparse coded bytes (default: off, sharing alone; "
        "0 alone is the same as off)",
    )
    g.add_argument(
        "--confirm-margin",
        type=float,
        default=0.0,
        metavar="Z",
        help="a point passes its whole-search-split confirmation only when its accuracy less Z "
        "standard errors of its paired difference to fp32 meets the target (against the "
        "winner's curse; needs --dataset_scale < 1; default 0: no margin)",
    )
    g.add_argument(
        "--skip-layers", default=None, metavar="REGEX", help="layers whose name matches stay fp32"
    )
    g.add_argument(
        "--size-model",
        choices=("fixed", "coded"),
        default="coded",
        help="objective: fixed-length indices + fp32 codebooks (the seed's) or the "
        "model file's real bytes, ANS-coded indices + codebooks (default: coded)",
    )
    g.add_argument(
        "--n-trials",
        type=int,
        default=None,
        metavar="N",
        help="trials of the final search phase (default 100; paper: 10000)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds for the final search phase (default: none)",
    )
    g.add_argument(
        "--population-size",
        type=int,
        default=20,
        metavar="P",
        help="NSGA-II population of the two-step and nsga2 searches (default 20)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="Ray workers, each holding the model (default: cores; 0 = in this process)",
    )
    g.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="join an existing Ray cluster instead of starting one",
    )
    g.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna storage URL (default: sqlite:///DIR/study.db); "
        "postgresql://... to share a study between machines",
    )
    g.add_argument(
        "--study-name",
        default="weightshare",
        metavar="NAME",
        help="name of the study in --storage (default: weightshare); one server holds many",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the samplers and k-means; prune / deep_compression: of the retraining "
        "(prune rounds, quantization-aware retraining, centroid fine-tuning; default 0)",
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(args: argparse.Namespace) -> int:
    """``--mode exploration`` from parsed flags; returns the exit code."""
    from weightshare.dse import study_lock
    from weightshare.dse.driver import ExploreConfig
    from weightshare.dse.space import k_grid, parse_k_grid, parse_prune_grid
    from weightshare.dse.trials import open_storage
    from weightshare.modes.loading import model_options
    from weightshare.networks import MLPERF_RATIO, get_network
    from weightshare.networks.datasets import resolve_data_dir

    spec = get_network(args.network_dataset)
    options = model_options(args)
    if spec.dataset == "fashionmnist" and options["dataset"] in (None, "fashionmnist"):
        resolve_data_dir(args.data_dir)
    ratio = args.accuracy_ratio  # 0 is refused by ExploreConfig, not replaced by the default
    if ratio is None:
        ratio = MLPERF_RATIO[args.mlperf_category or spec.category]
    if args.workers is not None:
        check_int("--workers", args.workers, 0)
    strategy = STRATEGIES.get(args.optimization)  # an unknown name is refused by ExploreConfig
    grid = strategy.default_k_grid if strategy is not None else None
    if args.k_grid is not None:  # "" is refused, not read as "the default grid"
        grid = parse_k_grid(args.k_grid)
    k_max = args.k_max if args.k_max is not None else (max(grid) if grid else 256)
    prune_grid = () if args.prune_grid is None else parse_prune_grid(args.prune_grid)
    config = ExploreConfig(
        optimization=args.optimization,
        with_local_optimization=bool(args.with_local_optimization),
        accuracy_ratio=ratio,
        k_grid=k_grid(args.k_min, k_max, grid),
        skip_layers=args.skip_layers,
        size_model=args.size_model,
        n_trials=args.n_trials,
        timeout=args.timeout,
        population_size=args.population_size,
        seed=args.seed,
        prune_grid=prune_grid,
        confirm_margin=args.confirm_margin,
    )
    if config.prune_grid and args.granularity != "layer":  # --prune-grid 0 prunes nothing
        raise UserError(
            "--prune-grid shares each pruned layer's survivors in one codebook: it needs "
            f"--granularity layer; got {args.granularity!r}"
        )
    if config.confirm_margin and args.dataset_scale == 1.0:
        raise UserError(
            "--confirm-margin applies to the whole-search-split confirmation, which runs only "
            "with --dataset_scale < 1; got --dataset_scale 1 and --confirm-margin "
            f"{config.confirm_margin:g}"
        )
    out_dir = check_output_dir("--log_file", args.log_file or Path("runs") / spec.name)
    storage = args.storage or f"sqlite:///{out_dir.resolve() / 'study.db'}"
    db = study_lock.sqlite_path(storage)
    if args.storage and (db is None or db.resolve().parent != out_dir.resolve()):
        open_storage(storage)  # a bad --storage fails here, before the log directory is made
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / ".write-test").touch()
        (out_dir / ".write-test").unlink()
    except OSError as exc:
        raise UserError(
            f"--log_file {out_dir} is not a writable directory ({exc.strerror})"
        ) from None
    # one driver per SQLite study, from before any work to the end; a full disk is one line
    with study_lock.hold(storage), disk_full_as_error(db or out_dir):
        return run(args, spec, config, out_dir, storage, _checkpoint(args, spec, options))


def _checkpoint(args, spec, options: dict) -> Path:
    """The checkpoint file the workers load (trained or exported here when needed).

    Options the backend cannot serve (``--clustering weighted`` / ``--correct`` on ONNX
    Runtime) are refused here, before the study is created: a study recorded with them would
    refuse the corrected command as "other options".
    """
    from weightshare.dse.correction import check_backend
    from weightshare.modes.evaluate import perbit_options
    from weightshare.modes.loading import load_backend, model_options
    from weightshare.networks.checkpoints import find_checkpoint

    perbit = perbit_options(args)
    checkpoint = find_checkpoint(spec.name, args.checkpoint, args.cache_dir)
    if checkpoint is not None and options == model_options(None) and not perbit.needs_calibration:
        from weightshare.networks.checkpoints import load_into

        load_into(spec.build(), checkpoint)  # fail here, in one line
    else:  # loads (trains, exports to ONNX, checks) once here, not inside every worker
        backend, checkpoint = load_backend(
            spec, args.checkpoint, args.cache_dir, args.data_dir, args.threads, **options
        )
        check_backend(backend, perbit)
    return Path(checkpoint)


def run(args, spec, config, out_dir: Path, storage: str, checkpoint: Path) -> int:
    """Open the study, start the workers, explore, write the outputs, print the summary."""
    import optuna

    from weightshare.codecs.container import MANIFEST_CODINGS
    from weightshare.console import print_exploration_summary
    from weightshare.dse import report, study_lock
    from weightshare.dse.driver import Driver
    from weightshare.dse.executor import LocalExecutor, RayExecutor
    from weightshare.dse.trials import TrialStore
    from weightshare.modes.evaluate import perbit_options
    from weightshare.modes.loading import EvaluatorFactory, model_options
    from weightshare.networks.datasets import SPLIT_SEED

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bars tell the trials
    options = model_options(args)
    perbit = perbit_options(args)
    settings = {
        "network": spec.name,
        **{k: str(v) for k, v in options.items() if v is not None},
        "checkpoint_sha256": _sha256(checkpoint),
        "dataset_scale": args.dataset_scale,
        "split_seed": SPLIT_SEED,
        "granularity": args.granularity,
        "init": args.init,
        # the stored sizes are model-file bytes: a writer with another manifest coding sizes
        # every point differently, so its studies do not mix with this one's
        "manifest_coding": max(MANIFEST_CODINGS),
        # part of the study's identity (recorded only when used: older studies still resume)
        **(perbit.as_dict() if perbit.needs_calibration else {}),
        **config.identity(),
    }
    # a SQLite study is locked by this process (study_lock): it is the study's only driver
    sole = study_lock.sqlite_path(storage) is not None
    store = TrialStore(storage, settings, args.study_name, sole_driver=sole)
    workers = args.workers
    threads = args.threads if workers == 0 else max(1, (os.cpu_count() or 1) // max(1, workers))
    factory = EvaluatorFactory(
        spec.name,
        str(checkpoint),
        args.data_dir,
        args.dataset_scale,
        threads,
        args.granularity,
        args.init,
        args.seed,
        **options,
        cache_dir=str(args.cache_dir),
        perbit=perbit,
    )
    if workers == 0:
        executor = LocalExecutor(factory)
    else:
        from weightshare.dse import ray_runtime

        ray_runtime.start(args.ray_address, workers)
        executor = RayExecutor(factory, workers)
    progress = _Progress()
    start = time.perf_counter()
    try:
        driver = Driver(config, store, executor, progress)
        outcome = driver.run()
    finally:
        progress.close()
        executor.close()
        store.close()
    doc = report.results(
        driver,
        outcome,
        network=spec.name if args.model is None else f"model:{Path(args.model).name}",
        backend=driver.info.backend,
        settings={
            **settings,
            "storage": storage,
            "study_name": args.study_name,
            "workers": workers,
            "n_trials": config.n_trials,
            "timeout": config.timeout,
            "checkpoint": str(checkpoint),
        },
        wall_seconds=store.add_wall_seconds(time.perf_counter() - start),
    )
    paths = report.write(out_dir, doc, driver, outcome)
    print_exploration_summary(doc, paths)
    if outcome.interrupted:
        return 130
    if outcome.best is None:
        return EXIT_INFEASIBLE
    return 0


class _Progress:
    """One tqdm bar per phase: evaluations done / planned, best feasible ratio so far."""

    def __init__(self) -> None:
        self.bars = {}

    def __call__(self, phase: str, done: int, total: int, best_ratio: float) -> None:
        from tqdm import tqdm

        bar = self.bars.get(phase)
        if bar is None:
            for other in self.bars.values():
                other.close()
            bar = self.bars[phase] = tqdm(total=total, desc=f"{phase:11s}", unit="eval", leave=True)
        bar.total = max(total, done)
        bar.n = done
        if best_ratio == best_ratio:  # not NaN
            bar.set_postfix_str(f"best feasible ratio {best_ratio:.2f}x", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
