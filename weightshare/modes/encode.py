"""write the compressed model file of the k per layer an exploration (or evaluation) chose

Reads ``DIR/results.json`` (``--mode exploration``: ``--trial best`` or a trial number it lists)
or else ``DIR/evaluation.json`` (``--mode evaluate``), loads the same weights, clusters them
with the same settings (granularity, init, seed: the same :class:`SharedWeights`) and writes
the model file (docs/format.md), by default ``DIR/model.wsz``, plus ``encoding.json`` beside it
(``DIR/encoding.json``; with ``--out ELSEWHERE/m.wsz``, ``ELSEWHERE/encoding.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightshare.codecs.codebook import CODEBOOK_DTYPES
from weightshare.codecs.coders import CODER_NAMES, DEFAULT_CODER
from weightshare.codecs.container import Manifest
from weightshare.codecs.sparse import SparseShared
from weightshare.dse.clustering import INIT_CHOICES
from weightshare.dse.correction import PerBitOptions
from weightshare.errors import UserError
from weightshare.modes.results_points import is_results, pick_point, sparsity_map
from weightshare.outputs import check_output_file, write_bytes_atomic, write_text_atomic
from weightshare.types import GRANULARITIES, K_MAX
from weightshare.validation import check_choice, check_int, check_optional_choice

DEFAULT_FILE_NAME = "model.wsz"
CLUSTERED_CODECS = ("shared", "sparse_shared")  # tensors of shared values (pruned or not)
_INERTIA_RTOL = 1e-9


@dataclass(frozen=True)
class Selection:
    """The candidate to encode, as the exploration or evaluation recorded it.

    Attributes:
        network: registry name.
        k_per_layer: canonical layer name -> k (layers not named stay fp32).
        sparsity: layer name -> magnitude-pruning sparsity of that layer before sharing
            (``--prune-grid`` explorations; layers not named are not pruned).
        granularity: ``layer`` or ``channel``.
        init: k-means init setting (``best``, ``linear``, ``quantile``, ``kmeans++``).
        seed: k-means seed.
        checkpoint: weights file recorded by the run (None: the default resolution).
        source: the JSON file read.
        trial: ``"best"``, a trial number listed in results.json, or ``"evaluation"``.
        codebook_dtype: the codebook dtype the candidate was evaluated with, if recorded.
        inertia: layer -> inertia recorded for the candidate (checked after re-clustering).
        checkpoint_sha256: sha256 of the weights file the run used, if recorded (checked).
        perbit: the ``--clustering`` / ``--correct`` options the run used (encode applies them
            again, so the file holds the corrected biases and BatchNorm statistics).
    """

    network: str
    k_per_layer: dict[str, int]
    granularity: str
    init: str
    seed: int
    checkpoint: str | None
    source: Path
    trial: int | str
    codebook_dtype: str | None = None
    inertia: dict[str, float] | None = None
    checkpoint_sha256: str | None = None
    perbit: PerBitOptions = field(default_factory=PerBitOptions)
    sparsity: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EncodeConfig:
    """Settings of ``--mode encode``.

    Attributes:
        log_dir: directory holding results.json or evaluation.json.
        trial: ``"best"`` or a trial number results.json lists (results.json only).
        out: output file (None: ``log_dir / DEFAULT_FILE_NAME``); ``encoding.json`` is
            written beside it.
        coder: index coder.
        codebook_dtype: ``fp32``/``fp16``, or None for the recorded one (else fp32).
        checkpoint: ``--checkpoint``; must agree with the recorded one when both exist.
        cache_dir: root of the checkpoint cache.
        threads: torch threads.
        data_dir: Fashion-MNIST directory (the calibration images of ``--correct`` and
            ``--clustering weighted``); None: the default.
    """

    log_dir: Path
    trial: int | str = "best"
    out: Path | None = None
    coder: str = DEFAULT_CODER
    codebook_dtype: str | None = None
    checkpoint: str | None = None
    cache_dir: Path = Path(".")
    threads: int = 2
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if self.trial != "best":
            check_int("--trial", self.trial, 0)
        check_choice("--coder", self.coder, CODER_NAMES)
        check_optional_choice("--codebook-dtype", self.codebook_dtype, tuple(CODEBOOK_DTYPES))
        check_int("--threads", self.threads, 1)


# --- reading the run's results --------------------------------------------------------------


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None


def _k_map(raw: Any, where: str) -> dict[str, int]:
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{where} must be a non-empty object layer -> k")
    return {str(n): check_int(f"k of layer {n!r} in {where}", k, 1, K_MAX) for n, k in raw.items()}


def _setting(settings: dict, key: str, default: Any, allowed: tuple, path: Path) -> Any:
    value = settings.get(key, default)
    if value is None:
        value = default
    if value not in allowed:
        raise UserError(f"{path}: settings.{key} must be one of {allowed}; got {value!r}")
    return value


def parse_trial(text: str) -> int | str:
    """``"best"`` or a trial number >= 0 (``--trial``)."""
    if text == "best":
        return text
    try:
        return check_int("--trial", int(text), 0)
    except ValueError:
        raise UserError(f"--trial must be 'best' or a trial number >= 0; got {text!r}") from None


def read_selection(log_dir: Path, trial: int | str = "best") -> Selection:
    """The candidate recorded in ``log_dir``: results.json first, else evaluation.json.

    Raises:
        UserError: no such directory or file, a malformed file, or an unknown trial.
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise UserError(f"--log_file {log_dir} is not a directory")
    results, evaluation = log_dir / "results.json", log_dir / "evaluation.json"
    if results.is_file():
        return _from_results(results, trial)
    if evaluation.is_file():
        if trial != "best":
            raise UserError(
                f"--trial {trial} needs {results} (an exploration); found only {evaluation}"
            )
        return _from_evaluation(evaluation)
    raise UserError(
        f"{log_dir} holds neither results.json (--mode exploration) nor evaluation.json "
        "(--mode evaluate)"
    )


def _from_results(path: Path, trial: int | str) -> Selection:
    data = _load_json(path)
    if not is_results(data):
        raise UserError(f"{path} is not an exploration results.json (no 'network', 'best')")
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise UserError(f"{path}: 'settings' must be an object")
    point = pick_point(data, path, trial)
    where = f"{path} best.k_per_layer" if trial == "best" else f"{path} trial {trial}"
    k_map = _k_map(point.get("k_per_layer"), where)
    sparsity = sparsity_map(point.get("sparsity_per_layer"), k_map, where)
    checkpoint = settings.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise UserError(f"{path}: settings.checkpoint must be a path or null; got {checkpoint!r}")
    return Selection(
        network=data["network"],
        k_per_layer=k_map,
        granularity=_setting(settings, "granularity", "layer", GRANULARITIES, path),
        init=_setting(settings, "init", "best", INIT_CHOICES, path),
        seed=check_int(f"{path}: settings.seed", settings.get("seed", 0), 0),
        checkpoint=checkpoint,
        source=path,
        trial=trial,
        codebook_dtype=_setting(settings, "codebook_dtype", None, (None, *CODEBOOK_DTYPES), path),
        checkpoint_sha256=settings.get("checkpoint_sha256"),
        perbit=_perbit(settings, path),
        sparsity=sparsity,
    )


def _from_evaluation(path: Path) -> Selection:
    data = _load_json(path)
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list) or not isinstance(data.get("network"), str):
        raise UserError(f"{path} is not an evaluation.json (needs 'network' and 'layers')")
    k_map, inertia, pruned = {}, {}, {}
    for row in layers:
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise UserError(f"{path}: every entry of 'layers' needs a 'name'")
        if row.get("k") is None:
            continue
        k_map[row["name"]] = check_int(f"k of layer {row['name']!r} in {path}", row["k"], 1, K_MAX)
        if isinstance(row.get("inertia"), float | int):
            inertia[row["name"]] = float(row["inertia"])
        if row.get("sparsity") is not None:
            pruned[row["name"]] = row["sparsity"]
    if not k_map:
        raise UserError(f"{path} clusters no layer (every k is null)")
    checkpoint = data.get("checkpoint")
    return Selection(
        network=data["network"],
        k_per_layer=k_map,
        granularity=_setting(data, "granularity", "layer", GRANULARITIES, path),
        init=_setting(data, "init", "best", INIT_CHOICES, path),  # older files: evaluate's default
        seed=0,
        checkpoint=checkpoint if isinstance(checkpoint, str) else None,
        source=path,
        trial="evaluation",
        inertia=inertia,
        perbit=_perbit(data, path),
        sparsity=sparsity_map(pruned, k_map, str(path)),
    )


def _perbit(record: dict, path: Path) -> PerBitOptions:
    """The options a run recorded (``clustering``, ``correct``, ``calibration_images``);
    files written before issue 10 record none: plain k-means, no correction."""
    try:
        return PerBitOptions(
            record.get("clustering", "kmeans"),
            tuple(record.get("correct") or ()),
            record.get("calibration_images") or 1024,
        )
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


# --- encoding -------------------------------------------------------------------------------


def run(config: EncodeConfig) -> dict:
    """Encode the selected candidate; print a summary and return encoding.json's dict."""
    import torch
    from tqdm import tqdm

    from weightshare.backends.pytorch import PyTorchBackend
    from weightshare.codecs import encode_model
    from weightshare.codecs.container import read_container
    from weightshare.codecs.model import file_meta, weight_key
    from weightshare.dse.clustering import ClusterCache
    from weightshare.dse.correction import Calibrator
    from weightshare.dse.space import choice
    from weightshare.networks import get_network
    from weightshare.networks.checkpoints import load_into, model_state
    from weightshare.networks.datasets import load_calibration

    out = check_output_file("--out", config.out or config.log_dir / DEFAULT_FILE_NAME)
    selection = read_selection(config.log_dir, config.trial)
    if selection.network.startswith("model:"):
        raise UserError(
            f"{selection.source} evaluated a user model ({selection.network}); --mode encode "
            "encodes registry networks (--network_dataset) only"
        )
    spec = get_network(selection.network)
    if getattr(spec, "framework", "pytorch") != "pytorch":
        raise UserError(f"--mode encode supports PyTorch networks; {spec.name} is not one")
    path = _resolve_checkpoint(selection, config)
    if path is None:
        raise UserError(
            f"no trained weights for {spec.name}: pass --checkpoint or train it "
            f"(python main.py --mode train --network_dataset {spec.name})"
        )
    if selection.checkpoint_sha256 is not None:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if digest != selection.checkpoint_sha256:
            raise UserError(
                f"checkpoint {path} changed since {selection.source} was written (sha256 "
                f"{digest[:12]}..., recorded {str(selection.checkpoint_sha256)[:12]}...)"
            )
    torch.set_num_threads(config.threads)
    model = load_into(spec.build(), path)
    backend = PyTorchBackend(model, spec.input_size, threads=config.threads)
    layer_names = [layer.name for layer in backend.layers()]
    unknown = [name for name in selection.k_per_layer if name not in layer_names]
    if unknown:
        raise UserError(
            f"{selection.source} names layer {unknown[0]!r}, which {spec.name} does not have; "
            f"layers: {', '.join(layer_names)}"
        )
    options = selection.perbit
    calibration = (
        load_calibration(options.calibration_images, config.data_dir)
        if options.needs_calibration
        else None
    )
    calibrator = Calibrator(backend, options, calibration)
    cache = ClusterCache(
        {name: backend.get_weights(name) for name in selection.k_per_layer},
        granularity=selection.granularity,
        init=selection.init,
        seed=selection.seed,
        importance=calibrator.importance,
    )
    layers = tqdm(selection.k_per_layer.items(), desc="clustering", leave=False, disable=None)
    shared_by_layer = {
        name: cache.choice(name, choice(k, selection.sparsity.get(name, 0.0))) for name, k in layers
    }
    _check_reproduced(selection, shared_by_layer)
    if options.correct:  # the file stores the corrected biases / BatchNorm statistics
        dense = {name: sw.dequantize() for name, sw in shared_by_layer.items()}
        backend.set_weights(dense)
        calibrator.apply(backend, dense)
    state = model_state(model)
    shared = {weight_key(name): sw for name, sw in shared_by_layer.items()}
    missing = [key for key in shared if key not in state]
    if missing:
        raise UserError(f"layer weight {missing[0]!r} is not in {spec.name}'s state dict")

    codebook_dtype = config.codebook_dtype or selection.codebook_dtype or "fp32"
    if codebook_dtype != (selection.codebook_dtype or "fp32"):
        print(
            f"note: the candidate was evaluated with {selection.codebook_dtype or 'fp32'} "
            f"codebooks; storing them as {codebook_dtype} rounds them, so the decoded model's "
            "predictions may differ from the evaluated ones"
        )
    meta = file_meta(
        granularity=selection.granularity,
        init=selection.init,
        seed=selection.seed,
        coder=config.coder,
        codebook_dtype=codebook_dtype,
    )
    provenance = {
        "source": str(selection.source),
        "trial": selection.trial,
        "checkpoint": str(path),
        "k_per_layer": selection.k_per_layer,
        **({"sparsity_per_layer": selection.sparsity} if selection.sparsity else {}),
        **selection.perbit.as_dict(),
    }
    data = encode_model(
        state,
        shared,
        network=spec.name,
        coder=config.coder,
        codebook_dtype=codebook_dtype,
        meta=meta,
    )
    write_bytes_atomic(out, data)
    manifest, _ = read_container(data)
    summary = file_summary(manifest)
    print_summary(summary, f"{spec.name}: {out} ({config.coder}, {codebook_dtype} codebooks)")
    result = {"file": str(out), **provenance, **meta, **summary}
    report = write_text_atomic(out.parent / "encoding.json", json.dumps(result, indent=2))
    print(f"wrote {out} and {report}")
    return result


def _resolve_checkpoint(selection: Selection, config: EncodeConfig) -> Path | None:
    from weightshare.networks.checkpoints import find_checkpoint

    recorded, given = selection.checkpoint, config.checkpoint
    if recorded is not None and given is not None and Path(recorded) != Path(given):
        raise UserError(
            f"{selection.source} was computed from checkpoint {recorded}; --checkpoint {given} "
            "differs (drop --checkpoint to encode what was evaluated)"
        )
    chosen = recorded if recorded is not None else given
    if chosen is not None and not Path(chosen).is_file():
        raise UserError(f"checkpoint {chosen} (from {selection.source}) does not exist")
    return find_checkpoint(selection.network, chosen, config.cache_dir)


def _check_reproduced(selection: Selection, shared: dict) -> None:
    """Re-clustering must give the evaluated candidate: compare the recorded inertias."""
    for name, recorded in (selection.inertia or {}).items():
        sw = shared[name]
        got = (sw.shared if isinstance(sw, SparseShared) else sw).inertia  # survivors if pruned
        if abs(got - recorded) > _INERTIA_RTOL * max(abs(recorded), 1e-30):
            raise UserError(
                f"re-clustering layer {name!r} gives inertia {got:.9g}, {selection.source} "
                f"recorded {recorded:.9g}: different weights or --init than the evaluated run"
            )


# --- summaries (shared with --mode decode) ---------------------------------------------------


def file_summary(manifest: Manifest) -> dict:
    """Sizes of a model file: totals and one row per clustered tensor (JSON-ready)."""
    from weightshare.codecs import tensor_sizes

    sizes = tensor_sizes(manifest)
    original = sum(s.original_bytes for s in sizes)
    clustered = [s for s in sizes if s.codec in CLUSTERED_CODECS]
    clustered_original = sum(s.original_bytes for s in clustered)
    clustered_stored = sum(s.stored_bytes for s in clustered)
    return {
        "network": manifest.network,
        "file_bytes": manifest.file_bytes,
        "manifest_bytes": manifest.manifest_bytes,
        "original_bytes": original,
        "ratio": original / manifest.file_bytes,
        "clustered_original_bytes": clustered_original,
        "clustered_stored_bytes": clustered_stored,
        "clustered_ratio": clustered_original / clustered_stored if clustered_stored else None,
        "unclustered_bytes": sum(s.stored_bytes for s in sizes if s.codec not in CLUSTERED_CODECS),
        "layers": [
            {
                "name": s.name,
                "n_weights": s.n,
                "k": s.k,
                "k_eff": s.k_eff,
                "coder": s.coder,
                "index_bytes": s.index_bytes,
                "codebook_bytes": s.codebook_bytes,
                "position_bytes": s.position_bytes,
                "index_bits_per_weight": 8 * s.index_bytes / s.n,
                "bits_per_weight": s.bits_per_weight,
            }
            for s in clustered
        ],
    }


def print_summary(summary: dict, title: str) -> None:
    """Per-layer table and totals of :func:`file_summary` on the terminal."""
    from rich.table import Table

    from weightshare.console import console

    table = Table(title=title)
    table.add_column("tensor", no_wrap=True)
    columns = ("index\nbytes", "codebook\nbytes", "positions\nbytes", "index\nbits/w")
    for col in ("weights", "k", "k_eff", *columns):
        table.add_column(col, justify="right")
    table.add_column("bits/w", justify="right")
    for row in summary["layers"]:
        table.add_row(
            row["name"],
            f"{row['n_weights']:,}",
            str(row["k"]),
            str(row["k_eff"]),
            f"{row['index_bytes']:,}",
            f"{row['codebook_bytes']:,}",
            f"{row['position_bytes']:,}",
            f"{row['index_bits_per_weight']:.3f}",
            f"{row['bits_per_weight']:.3f}",
        )
    console.print(table)
    clustered = summary["clustered_ratio"]
    console.print(
        f"file {summary['file_bytes']:,} B (manifest {summary['manifest_bytes']:,} B, "
        f"unclustered tensors {summary['unclustered_bytes']:,} B); fp32 state dict "
        f"{summary['original_bytes']:,} B: ratio {summary['ratio']:.2f}x"
        + (f"; clustered layers alone {clustered:.2f}x" if clustered else "")
    )


# --- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``encode`` flags (``--coder`` and ``--codebook-dtype`` serve ``decode``'s help too)."""
    group = parser.add_argument_group("encode (--log_file DIR names the run to encode)")
    group.add_argument(
        "--trial",
        default="best",
        metavar="best|N",
        help="which candidate of results.json (encode: DIR/results.json; evaluate: --k-per-layer "
        "results.json): the best one or trial N of its pareto/closest lists (default: best)",
    )
    group.add_argument(
        "--coder",
        choices=CODER_NAMES,
        default=DEFAULT_CODER,
        help="index coder: ans (rANS, exact counts), huffman (Deep Compression's), "
        f"fixed (ceil(log2 k) bits) (default: {DEFAULT_CODER})",
    )
    group.add_argument(
        "--codebook-dtype",
        choices=tuple(CODEBOOK_DTYPES),
        default=None,
        help="codebook storage; fp16 rounds the shared values (default: the one the run "
        "evaluated, else fp32)",
    )


def main(args: argparse.Namespace) -> int:
    """``--mode encode`` from parsed flags."""
    if args.log_file is None:
        raise UserError("--mode encode needs --log_file DIR (an exploration or evaluation run)")
    if getattr(args, "model_file", None) is not None:
        raise UserError(
            f"--mode encode takes no positional argument; got {args.model_file!r} "
            "(did you mean --mode decode?)"
        )
    config = EncodeConfig(
        log_dir=args.log_file,
        trial=parse_trial(args.trial),
        out=args.out,
        coder=args.coder,
        codebook_dtype=args.codebook_dtype,
        checkpoint=args.checkpoint,
        cache_dir=args.cache_dir,
        threads=args.threads,
        data_dir=args.data_dir,
    )
    run(config)
    return 0
