"""code a sequence of checkpoints, each against the one before (seed: eval_lossless, eval_lossy)

``python main.py --mode residual_eval --epoch-first F --epoch-last L --epoch-interval N
[--learning-rate LR] [--path-pt DIR] [--method M[,M...]]``: for the epochs ``F, F+N, ...
<= L``, epoch ``e`` is coded against epoch ``e - N`` as the decoder holds it: the exact
checkpoint ``F`` to start with, then its own reconstructions (closed loop, so lossy errors do
not accumulate; for ``ResEntropy`` the same as open loop). Every file is decoded back and
checked. Prints one row per step and method (file bytes, bit saving, RMSE, max error, holdout
top-1/top-5 of the rebuilt and the original model, MB/s) and the mean per method;
``--log_file DIR`` writes ``DIR/residual_eval.json``.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import asdict, dataclass

from weightshare.errors import UserError
from weightshare.modes.residual import ResidualChoice
from weightshare.validation import check_int


@dataclass(frozen=True)
class ResidualEvalConfig(ResidualChoice):
    """Settings of ``--mode residual_eval`` (plus the keyword-only
    :class:`~weightshare.modes.residual.ResidualChoice` ones).

    Attributes:
        epochs: the coded epochs, at least two, evenly spaced (``epoch_list``).
        methods: residual methods, each its own chain (names of ``METHOD_NAMES``).
    """

    epochs: tuple[int, ...]
    methods: tuple[str, ...]

    def __post_init__(self) -> None:
        from weightshare.codecs.residual import METHOD_NAMES

        super().__post_init__()
        if len(self.epochs) < 2:
            raise UserError(f"a sequence needs at least two epochs; got {list(self.epochs)}")
        if not self.methods or any(m not in METHOD_NAMES for m in self.methods):
            raise UserError(
                f"--method must name methods among {METHOD_NAMES}; got {','.join(self.methods)!r}"
            )


def epoch_list(first: int, last: int, interval: int) -> list[int]:
    """``first, first + interval, ... <= last`` (at least two epochs)."""
    first = check_int("--epoch-first", first, 0)
    last = check_int("--epoch-last", last, 0)
    interval = check_int("--epoch-interval", interval, 1)
    epochs = list(range(first, last + 1, interval))
    if len(epochs) < 2:
        raise UserError(
            f"--epoch-first {first} --epoch-last {last} --epoch-interval {interval} gives "
            f"{len(epochs)} epoch(s); a sequence needs at least two"
        )
    return epochs


def run_sequence(
    states: list[tuple[str, dict]],
    methods: tuple[str, ...],
    *,
    network: str = "",
    settings=None,
    probe=None,
    accuracy: str = "all",
    progress: bool = True,
) -> list:
    """Closed-loop coding of ``states`` (label, state dict), each against the previous one.

    Args:
        states: the checkpoints in order; the first is the decoder's exact starting point.
        methods: residual methods to run (each its own chain).
        network: recorded in the files.
        settings: ``GridSettings`` of ``ResEntropy16bits``.
        probe: callable ``state -> (top1, top5)`` (an ``AccuracyProbe``), or None.
        accuracy: ``all`` (every step), ``last`` (last step only) or ``none``.
        progress: show a progress bar.

    Returns:
        One ``PairResult`` per (method, step), methods in order.
    """
    from tqdm import tqdm

    from weightshare.codecs.residual import METHODS
    from weightshare.modes.residual import PairResult, code_pair

    original_acc: dict[int, tuple[float, float]] = {}
    results = []
    steps = [(m, j) for m in methods for j in range(1, len(states))]
    held = None
    for method, j in tqdm(steps, desc="residual_eval", disable=not progress, leave=False):
        if j == 1:
            held = states[0][1]  # the decoder starts from the exact first checkpoint
        label_prev, label_cur = states[j - 1][0], states[j][0]
        cur = states[j][1]
        reference = held if METHODS[method].needs_reference else None
        _, rebuilt, result = code_pair(
            cur,
            reference,
            method,
            network=network,
            settings=settings,
            meta={"pre": label_prev, "cur": label_cur, "closed_loop": True},
            labels=(label_prev, label_cur),
        )
        held = rebuilt  # closed loop: the next residual is taken against what the decoder holds
        wanted = accuracy == "all" or (accuracy == "last" and j == len(states) - 1)
        if probe is not None and wanted:
            if j not in original_acc:
                original_acc[j] = probe(cur)
            top1, top5 = probe(rebuilt)
            result = PairResult(
                **{
                    **asdict(result),
                    "top1": top1,
                    "top5": top5,
                    "top1_original": original_acc[j][0],
                    "top5_original": original_acc[j][1],
                }
            )
        results.append(result)
    return results


def summarise(results: list) -> dict[str, dict]:
    """Per method: mean saving, worst RMSE / max error, mean MB/s, last accuracies."""
    out = {}
    for method in dict.fromkeys(r.method for r in results):
        rows = [r for r in results if r.method == method]
        out[method] = {
            "steps": len(rows),
            "mean_saving": statistics.fmean(r.saving for r in rows),
            "max_rmse": max(r.rmse for r in rows),
            "max_abs_err": max(r.max_abs_err for r in rows),
            "all_exact": all(r.exact for r in rows),
            "encode_mb_s": sum(r.original_bytes for r in rows)
            / sum(r.encode_s for r in rows)
            / 1e6,
            "decode_mb_s": sum(r.original_bytes for r in rows)
            / sum(r.decode_s for r in rows)
            / 1e6,
            "last_top1": rows[-1].top1,
            "last_top5": rows[-1].top5,
            "last_top1_original": rows[-1].top1_original,
            "last_top5_original": rows[-1].top5_original,
        }
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sequence flags (the others are ``--mode residual``'s)."""
    group = parser.add_argument_group("residual_eval (a sequence of epochs)")
    group.add_argument(
        "--epoch-first",
        type=int,
        default=None,
        metavar="F",
        help="first epoch (coded exactly; the chain starts from it)",
    )
    group.add_argument(
        "--epoch-last",
        type=int,
        default=None,
        metavar="L",
        help="last epoch (inclusive, if on the interval)",
    )
    group.add_argument(
        "--epoch-interval",
        type=int,
        default=1,
        metavar="N",
        help="gap n between coded epochs (default: 1)",
    )


def main(args: argparse.Namespace) -> int:
    """``--mode residual_eval`` from parsed flags."""
    from weightshare.codecs.residual import METHOD_NAMES
    from weightshare.modes.residual import checkpoint_source, parse_methods, residual_flags

    if args.epoch_first is None or args.epoch_last is None:
        raise UserError("--mode residual_eval needs --epoch-first F and --epoch-last L")
    config = ResidualEvalConfig(
        epochs=tuple(epoch_list(args.epoch_first, args.epoch_last, args.epoch_interval)),
        methods=parse_methods(args.method, METHOD_NAMES),
        **residual_flags(args),
    )
    if config.log_file is not None:
        from weightshare.outputs import check_output_dir

        check_output_dir("--log_file", config.log_file)
    run(config, checkpoint_source(args))
    return 0


def run(config: ResidualEvalConfig, source) -> int:
    """Code ``config.epochs`` of ``source`` (a :class:`~weightshare.modes.residual.
    CheckpointSource`) closed loop with every method; print the table and the means, write
    ``residual_eval.json`` when ``config.log_file`` is set."""
    from weightshare.console import console
    from weightshare.modes.residual import (
        AccuracyProbe,
        load_numpy_state,
        print_results,
        write_json,
    )

    epochs, methods = list(config.epochs), config.methods
    settings = config.grid()
    epoch_interval = epochs[1] - epochs[0]
    paths = [source.path(e, f"epoch {e}") for e in epochs]
    states = [(str(p), load_numpy_state(p)) for p in paths]
    from weightshare.codecs.residual import check_pair

    for (label, state), (label_prev, prev) in zip(states[1:], states[:-1], strict=True):
        check_pair(state, prev, label, label_prev)
    probe = None
    if config.eval_accuracy != "none":
        probe = AccuracyProbe(config.network, config.threads, config.data_dir)
    results = run_sequence(
        states,
        methods,
        network=config.network,
        settings=settings,
        probe=probe,
        accuracy=config.eval_accuracy,
    )
    title = (
        f"{config.network}: epochs {epochs[0]}..{epochs[-1]} every "
        f"{epoch_interval} from {source.directory} (closed loop)"
    )
    print_results(results, title)
    summary = summarise(results)
    for method, s in summary.items():
        console.print(
            f"{method}: mean bit saving {100 * s['mean_saving']:.2f} % over {s['steps']} steps, "
            f"max error {s['max_abs_err']:.3g}, encode {s['encode_mb_s']:.0f} MB/s, "
            f"decode {s['decode_mb_s']:.0f} MB/s"
        )
    report = write_json(
        config.log_file,
        "residual_eval.json",
        {
            "network": config.network,
            "directory": str(source.directory),
            "epochs": epochs,
            "epoch_interval": epoch_interval,
            "step_exp": settings.step_exp,
            "closed_loop": True,
            "summary": summary,
            "steps": [r.to_json() for r in results],
        },
    )
    if report:
        print(f"wrote {report}")
    return 0
