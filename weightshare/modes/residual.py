"""code checkpoint B as a residual against checkpoint A (the seed's demo.py), into a model file

``python main.py --mode residual --pre-epoch A --cur-epoch B --method M --out F``: A and B are
state-dict files, or epoch numbers resolved as ``DIR/EPOCH_LR.pt`` in ``--path-pt DIR`` (default:
the ``--mode train`` checkpoints of ``--network_dataset``) with ``--learning-rate LR``. Writes
F (docs/residual.md), decodes it back to check it, and prints the size, the bit saving against
the state dict's bytes, RMSE / max error and the holdout top-1/top-5 of the rebuilt model;
``--log_file DIR`` adds ``DIR/residual.json``. The flags of the residual modes live here.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from weightshare.errors import UserError
from weightshare.outputs import (
    check_output_dir,
    check_output_file,
    write_bytes_atomic,
    write_text_atomic,
)
from weightshare.validation import check_choice, check_int

ACCURACY_CHOICES = ("all", "last", "none")
_EPOCH_RE = re.compile(r"^\d+$")
_NAME_RE = re.compile(r"^(\d+)_([0-9.eE+-]+)\.pt$")


# --- configs ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ResidualChoice:
    """The settings ``--mode residual`` and ``--mode residual_eval`` share (keyword-only).

    Attributes:
        network: registry name (recorded in the files; the accuracy probe builds it).
        step_exp: ``ResEntropy16bits``'s grid step exponent (``--step-exp``).
        eval_accuracy: ``all``, ``last`` or ``none``.
        threads: torch threads of the accuracy probe, >= 1.
        data_dir: Fashion-MNIST IDX directory (None: the Debian package's).
        log_file: directory for the mode's JSON document, or None.
    """

    network: str
    step_exp: int
    eval_accuracy: str = "all"
    threads: int = 2
    data_dir: str | None = None
    log_file: Path | None = None

    def __post_init__(self) -> None:
        from weightshare.codecs.residual.grid import STEP_EXP_RANGE

        check_int("--step-exp", self.step_exp, *STEP_EXP_RANGE)
        check_choice("--eval-accuracy", self.eval_accuracy, ACCURACY_CHOICES)
        check_int("--threads", self.threads, 1)

    def grid(self):
        """The ``ResEntropy16bits`` grid settings."""
        from weightshare.codecs.residual import GridSettings

        return GridSettings(step_exp=self.step_exp)


def residual_flags(args: argparse.Namespace) -> dict:
    """The :class:`ResidualChoice` fields from parsed command-line ``args``."""
    return {
        "network": args.network_dataset,
        "step_exp": args.step_exp,
        "eval_accuracy": args.eval_accuracy,
        "threads": args.threads,
        "data_dir": args.data_dir,
        "log_file": args.log_file,
    }


@dataclass(frozen=True)
class ResidualConfig(ResidualChoice):
    """Settings of ``--mode residual`` (plus the keyword-only :class:`ResidualChoice` ones).

    Attributes:
        method: one residual method (a name of ``METHOD_NAMES``).
        pre, cur: checkpoints A and B (B is coded against A).
        out: the residual file to write.
    """

    method: str
    pre: Path
    cur: Path
    out: Path | None

    def __post_init__(self) -> None:
        from weightshare.codecs.residual import METHOD_NAMES

        super().__post_init__()
        check_choice("--method", self.method, METHOD_NAMES)
        if self.out is None:
            raise UserError("--mode residual needs --out FILE (or --log_file DIR)")


# --- checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointSource:
    """Where epoch numbers are looked up.

    Attributes:
        directory: folder of ``EPOCH_LR.pt`` files.
        learning_rate: the ``LR`` part of the names (None: the only one present).
    """

    directory: Path
    learning_rate: str | None = None

    def path(self, epoch: int, flag: str) -> Path:
        """``directory / f"{epoch}_{lr}.pt"``; UserError naming what exists when it is missing."""
        found = {}
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                match = _NAME_RE.match(path.name)
                if match:
                    found.setdefault(match.group(2), {})[int(match.group(1))] = path
        if not found:
            raise UserError(
                f"{flag} {epoch}: no EPOCH_LR.pt checkpoints in {self.directory} (train with "
                "--mode train, or pass --path-pt DIR or a file path)"
            )
        if self.learning_rate is None:
            if len(found) > 1:
                raise UserError(
                    f"{flag} {epoch}: {self.directory} holds several learning rates "
                    f"({', '.join(sorted(found))}); pass --learning-rate"
                )
            lr = next(iter(found))
        else:
            lr = next((k for k in found if _same_lr(k, self.learning_rate)), None)
            if lr is None:
                raise UserError(
                    f"--learning-rate {self.learning_rate}: {self.directory} has checkpoints "
                    f"for {', '.join(sorted(found))} only"
                )
        if epoch not in found[lr]:
            epochs = sorted(found[lr])
            raise UserError(
                f"{flag} {epoch}: no {epoch}_{lr}.pt in {self.directory} (epochs at lr {lr}: "
                f"{_ranges(epochs)})"
            )
        return found[lr][epoch]


def _same_lr(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def _ranges(values: list[int]) -> str:
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts)


def resolve(spec: str, flag: str, source: CheckpointSource) -> Path:
    """A checkpoint path from ``--pre-epoch`` / ``--cur-epoch``: a file, or an epoch number."""
    path = Path(spec)
    if path.is_file():
        return path
    if _EPOCH_RE.match(spec):
        return source.path(int(spec), flag)
    raise UserError(f"{flag} {spec}: no such file (give a state-dict path or an epoch number)")


def load_numpy_state(path: Path) -> dict:
    """A state-dict file as name -> numpy array (``torch.load(weights_only=True)``)."""
    from weightshare.networks.checkpoints import load_state_dict

    state = load_state_dict(Path(path))
    out = {}
    for name, tensor in state.items():
        try:
            out[name] = tensor.detach().cpu().contiguous().numpy()
        except TypeError:
            raise UserError(
                f"{path}: tensor {name!r} has dtype {tensor.dtype}; residual files hold "
                "float16/32/64, int8/16/32/64, uint8 and bool tensors"
            ) from None
    return out


def save_numpy_state(state: dict, out: Path) -> None:
    """Write a plain state dict (``torch.save``) loadable with ``weights_only=True``."""
    import torch

    from weightshare.networks.checkpoints import save_state_dict

    save_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, out)


# --- accuracy ---------------------------------------------------------------------------------


class AccuracyProbe:
    """Holdout top-1/top-5 of state dicts loaded into one registry network.

    Args:
        network: registry name (``--network_dataset``).
        threads: torch threads.
        data_dir: Fashion-MNIST directory (None: the default).
    """

    def __init__(self, network: str, threads: int = 2, data_dir=None):
        import torch

        from weightshare.backends.pytorch import PyTorchBackend
        from weightshare.networks import NETWORKS, get_network
        from weightshare.networks.datasets import load_split

        self.spec = get_network(network)
        if network not in NETWORKS:  # the Fashion-MNIST PyTorch registry (not the zoo)
            raise UserError(
                f"accuracy of residual checkpoints needs a Fashion-MNIST PyTorch registry "
                f"network; {network} is not one (pass --eval-accuracy none)"
            )
        torch.set_num_threads(threads)
        self.backend = PyTorchBackend(self.spec.build(), self.spec.input_size, threads=threads)
        self.split = load_split("holdout", data_dir)
        self._keys = self.backend.model.state_dict()

    def __call__(self, state: dict) -> tuple[float, float]:
        """(top-1, top-5) in [0, 1] of ``state`` (name -> numpy array) on the holdout split."""
        import torch

        missing = sorted(set(self._keys) - set(state))
        unexpected = sorted(set(state) - set(self._keys))
        shapes = [
            k
            for k in self._keys
            if k in state and tuple(state[k].shape) != tuple(self._keys[k].shape)
        ]
        if missing or unexpected or shapes:
            raise UserError(
                f"the checkpoints do not fit {self.spec.name} (missing {missing[:3]}, unexpected "
                f"{unexpected[:3]}, shape mismatch {shapes[:3]}); pass the right "
                "--network_dataset or --eval-accuracy none"
            )
        self.backend.model.load_state_dict(
            {k: torch.from_numpy(v.copy()) for k, v in state.items()}
        )
        result = self.backend.evaluate(self.split)
        return result.top1, result.top5


# --- one pair ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairResult:
    """One coded checkpoint: sizes, errors, speed, accuracy.

    Attributes:
        method: residual method.
        pre, cur: the checkpoint files (or labels).
        file_bytes: size of the residual file.
        payload_bytes: its chunks alone (no header/manifest).
        original_bytes: the current state dict's tensor bytes (fp32 baseline).
        saving: ``1 - file_bytes / original_bytes`` (the seed's "bit saving").
        rmse, max_abs_err: float64 error over all floating scalars.
        exact: decoded bit for bit.
        encode_s, decode_s: wall seconds of encode / decode (decode includes the reference
            fingerprint check).
        top1, top5: holdout accuracy of the rebuilt model (None when not evaluated).
        top1_original, top5_original: the same for the original current checkpoint.
    """

    method: str
    pre: str
    cur: str
    file_bytes: int
    payload_bytes: int
    original_bytes: int
    saving: float
    rmse: float
    max_abs_err: float
    exact: bool
    encode_s: float
    decode_s: float
    top1: float | None = None
    top5: float | None = None
    top1_original: float | None = None
    top5_original: float | None = None

    @property
    def encode_mb_s(self) -> float:
        """Encode throughput in MB/s of the original bytes."""
        return self.original_bytes / max(self.encode_s, 1e-9) / 1e6

    @property
    def decode_mb_s(self) -> float:
        """Decode throughput in MB/s of the original bytes."""
        return self.original_bytes / max(self.decode_s, 1e-9) / 1e6

    def to_json(self) -> dict:
        """JSON-ready dict, throughputs included."""
        return {**asdict(self), "encode_mb_s": self.encode_mb_s, "decode_mb_s": self.decode_mb_s}


def code_pair(
    cur: dict,
    prev: dict | None,
    method: str,
    *,
    network: str = "",
    settings=None,
    meta: dict | None = None,
    labels: tuple[str, str] = ("", ""),
):
    """Encode ``cur`` against ``prev``, decode it back; ``(data, rebuilt state, PairResult)``."""
    from weightshare.codecs.container import read_container
    from weightshare.codecs.residual import decode_residual, encode_residual
    from weightshare.codecs.residual.metrics import distortion

    start = time.perf_counter()
    data = encode_residual(cur, prev, method=method, network=network, settings=settings, meta=meta)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    rebuilt = decode_residual(data, prev).state
    decode_s = time.perf_counter() - start
    manifest, _ = read_container(data)
    payload = sum(t.coded_bytes for t in manifest.tensors)
    original = sum(v.nbytes for v in cur.values())
    d = distortion(cur, rebuilt)
    result = PairResult(
        method,
        labels[0],
        labels[1],
        len(data),
        payload,
        original,
        1 - len(data) / original,
        d.rmse,
        d.max_abs_err,
        d.exact,
        encode_s,
        decode_s,
    )
    return data, rebuilt, result


def print_results(results: list[PairResult], title: str) -> None:
    """The results as a table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    from weightshare.console import console

    table = Table(title=title)
    table.add_column("method", no_wrap=True)
    table.add_column("A -> B", no_wrap=True)
    for col in ("file bytes", "saving", "RMSE", "max err", "top-1 (orig)", "top-5 (orig)"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("enc/dec MB/s", justify="right", no_wrap=True)

    def acc(value, original):
        if value is None:
            return "-"
        return f"{100 * value:.2f}" + (f" ({100 * original:.2f})" if original is not None else "")

    for r in results:
        table.add_row(
            r.method,
            f"{Path(r.pre).stem} -> {Path(r.cur).stem}",
            f"{r.file_bytes:,}",
            f"{100 * r.saving:.2f} %",
            f"{r.rmse:.3g}",
            "exact" if r.exact else f"{r.max_abs_err:.3g}",
            acc(r.top1, r.top1_original),
            acc(r.top5, r.top5_original),
            f"{r.encode_mb_s:.0f} / {r.decode_mb_s:.0f}",
        )
    wide = console if console.width >= 150 else Console(width=150)
    wide.print(table)


def parse_methods(text: str | None, default: tuple[str, ...] | None) -> tuple[str, ...]:
    """``--method``: one name or a comma-separated list of ``METHOD_NAMES``."""
    from weightshare.codecs.residual import METHOD_NAMES

    if text is None:
        if default is None:
            raise UserError(f"--method is required; one of {', '.join(METHOD_NAMES)}")
        return default
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [n for n in names if n not in METHOD_NAMES]
    if bad or not names:
        raise UserError(f"--method must name methods among {METHOD_NAMES}; got {text!r}")
    return names


def checkpoint_source(args: argparse.Namespace) -> CheckpointSource:
    """``--path-pt`` (default: the train checkpoints of the network) and ``--learning-rate``."""
    from weightshare.networks.checkpoints import checkpoint_dir

    directory = args.path_pt or checkpoint_dir(args.cache_dir, args.network_dataset)
    if args.path_pt is not None and not Path(args.path_pt).is_dir():
        raise UserError(f"--path-pt {args.path_pt} is not a directory")
    return CheckpointSource(Path(directory), args.learning_rate)


def write_json(log_dir: Path | None, name: str, document: dict) -> Path | None:
    """``log_dir / name`` as indented JSON (None when no ``--log_file``)."""
    if log_dir is None:
        return None
    return write_text_atomic(log_dir / name, json.dumps(document, indent=2))


# --- command line ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``residual``, ``residual_decode`` and ``residual_eval``."""
    from weightshare.codecs.residual import METHOD_NAMES

    group = parser.add_argument_group(
        "residual, residual_decode, residual_eval (checkpoint B coded against checkpoint A)"
    )
    group.add_argument(
        "--pre-epoch",
        default=None,
        metavar="A",
        help="previous checkpoint: a state-dict file or an epoch number",
    )
    group.add_argument(
        "--cur-epoch",
        default=None,
        metavar="B",
        help="current checkpoint: a state-dict file or an epoch number",
    )
    group.add_argument(
        "--method",
        default=None,
        metavar="M[,M...]",
        help=f"residual method(s): {', '.join(METHOD_NAMES)} (residual_eval: a "
        "comma-separated list, default all); prune: magnitude (default) or fpgm; "
        "partial_update: a comma list of dpu (default), gcpu, lcpu, rpu, fu, pruning",
    )
    group.add_argument(
        "--path-pt",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of EPOCH_LR.pt checkpoints for epoch numbers (default: "
        "<cache>/checkpoints/<network_dataset>)",
    )
    group.add_argument(
        "--learning-rate",
        default=None,
        metavar="LR",
        help="the LR of EPOCH_LR.pt names (default: the only one in the folder)",
    )
    group.add_argument(
        "--step-exp",
        type=int,
        default=-15,
        metavar="E",
        help="ResEntropy16bits grid step 2^E (default: -15, the seed's)",
    )
    group.add_argument(
        "--eval-accuracy",
        choices=ACCURACY_CHOICES,
        default="all",
        help="holdout top-1/top-5 of the rebuilt models of --network_dataset: "
        "all, last (residual_eval) or none (default: all)",
    )


def main(args: argparse.Namespace) -> int:
    """``--mode residual`` from parsed flags."""
    if args.pre_epoch is None or args.cur_epoch is None:
        raise UserError("--mode residual needs --pre-epoch A and --cur-epoch B")
    method = _single(args.method)
    out = args.out or (args.log_file / "residual.wsz" if args.log_file else None)
    source = checkpoint_source(args)
    config = ResidualConfig(
        method=method,
        pre=resolve(args.pre_epoch, "--pre-epoch", source),
        cur=resolve(args.cur_epoch, "--cur-epoch", source),
        out=out,
        **residual_flags(args),
    )
    run(config)
    return 0


def run(config: ResidualConfig) -> dict:
    """Code checkpoint ``cur`` against ``pre`` into ``out``; print the row and return the
    ``residual.json`` document."""
    from weightshare.codecs.residual import METHODS, check_pair

    out, pre_path, cur_path, method = config.out, config.pre, config.cur, config.method
    check_output_file("--out", out)
    if config.log_file is not None:
        check_output_dir("--log_file", config.log_file)
    settings = config.grid()
    prev, cur = load_numpy_state(pre_path), load_numpy_state(cur_path)
    check_pair(cur, prev, f"--cur-epoch {cur_path}", f"--pre-epoch {pre_path}")
    meta = {"pre": str(pre_path), "cur": str(cur_path)}
    data, rebuilt, result = code_pair(
        cur,
        prev if METHODS[method].needs_reference else None,
        method,
        network=config.network,
        settings=settings,
        meta=meta,
        labels=(str(pre_path), str(cur_path)),
    )
    write_bytes_atomic(out, data)
    if config.eval_accuracy != "none":
        probe = AccuracyProbe(config.network, config.threads, config.data_dir)
        top1, top5 = probe(rebuilt)
        top1_o, top5_o = probe(cur)
        result = PairResult(
            **{
                **asdict(result),
                "top1": top1,
                "top5": top5,
                "top1_original": top1_o,
                "top5_original": top5_o,
            }
        )
    print_results([result], f"{config.network}: {out}")
    document = {
        "file": str(out),
        "network": config.network,
        "step_exp": settings.step_exp,
        **result.to_json(),
    }
    report = write_json(config.log_file, "residual.json", document)
    print(f"wrote {out}" + (f" and {report}" if report else ""))
    return document


def _single(text: str | None) -> str:
    names = parse_methods(text, None)
    if len(names) != 1:
        raise UserError(f"--mode residual codes with one --method; got {text!r}")
    return names[0]
