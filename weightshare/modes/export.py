"""write the chosen weight-shared model (k per layer from --log_file DIR) as ONNX and natively

The k of each layer comes from ``DIR/results.json`` (``best.k_per_layer``, written by
``--mode exploration``) or else ``DIR/evaluation.json`` (``layers[].k``, written by ``--mode
evaluate``; ``null`` keeps a layer fp32). The same model flags as the run that wrote the file
select the model. Files go to ``DIR/export/``:

* ``<name>.onnx``: the weight-shared model for ONNX Runtime (Keras models: only with tf2onnx);
* the source framework's own format: ``<name>.pt`` (a state dict for a registry PyTorch
  network, TorchScript for a TorchScript ``--model``), ``<name>.keras`` for Keras;
* ``export.json``: the k map, the files with their sha256, and the search-split accuracy of the
  in-memory weight-shared model and of the exported ONNX file (they should agree).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from weightshare.errors import UserError
from weightshare.modes.model_choice import ModelChoice, model_choice_flags
from weightshare.outputs import check_output_dir, write_text_atomic


@dataclass(frozen=True)
class ExportConfig(ModelChoice):
    """Settings of ``--mode export`` (the model flags: the keyword-only fields of
    :class:`~weightshare.modes.model_choice.ModelChoice`; ``granularity`` and ``init`` apply
    when the run's file does not record them).

    Attributes:
        log_dir: the finished run's directory (results.json or evaluation.json); files go to
            ``log_dir/export/``.
    """

    log_dir: Path | None

    def __post_init__(self) -> None:
        if self.log_dir is None:
            raise UserError("--mode export needs --log_file DIR (a directory of a finished run)")
        super().__post_init__()


def read_k_map(directory: Path) -> tuple[dict[str, int], dict]:
    """``(layer -> k, settings)`` from ``results.json`` or ``evaluation.json`` in ``directory``.

    ``settings`` holds what the file says about the run: ``network``, ``granularity``,
    ``init``, ``clustering``, ``correct``, ``calibration_images`` (those it records), and
    ``sparsity_per_layer`` (layer -> sparsity of the point's pruned layers, maybe empty).
    """
    from weightshare.modes.evaluate import validate_k
    from weightshare.modes.results_points import sparsity_map

    results, evaluation = directory / "results.json", directory / "evaluation.json"
    path = results if results.is_file() else evaluation
    if not path.is_file():
        raise UserError(
            f"--log_file {directory} holds neither results.json (--mode exploration) nor "
            "evaluation.json (--mode evaluate)"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object")
    if path == results:
        best = data.get("best")
        k_map = best.get("k_per_layer") if isinstance(best, dict) else None
        if not isinstance(k_map, dict):
            raise UserError(f"{path} has no best.k_per_layer object (no feasible result yet?)")
        k_map = {str(n): k for n, k in k_map.items() if k is not None}
        pruned = best.get("sparsity_per_layer")
        extra = data.get("settings")
        settings = {**(extra if isinstance(extra, dict) else {}), **data}
    else:
        layers = data.get("layers")
        if not isinstance(layers, list) or not all(isinstance(r, dict) for r in layers):
            raise UserError(f"{path} has no layers list")
        k_map = {str(r.get("name")): r.get("k") for r in layers if r.get("k") is not None}
        pruned = {str(r.get("name")): r["sparsity"] for r in layers if r.get("sparsity")}
        settings = data
    if not k_map:
        raise UserError(f"{path} clusters no layer: nothing to export")
    k_map = {name: validate_k(k, f"k of layer {name!r} in {path}") for name, k in k_map.items()}
    recorded = ("network", "granularity", "init", "clustering", "correct", "calibration_images")
    keep = {k: settings[k] for k in recorded if k in settings}
    keep["sparsity_per_layer"] = sparsity_map(pruned, k_map, str(path))
    return k_map, keep


def _sha256(path: Path) -> str:
    from weightshare.backends.onnx_export import sha256_file

    return sha256_file(path)


def run(config: ExportConfig) -> dict:
    """Export; print a summary and return ``export.json``'s dict."""
    from weightshare.backends.ort import OnnxRuntimeBackend
    from weightshare.backends.registry import get_plugin
    from weightshare.dse.correction import Calibrator, PerBitOptions
    from weightshare.modes.loading import (
        load_backend,
        load_calibration,
        load_splits,
        model_options,
    )
    from weightshare.modes.sharing import cluster_layers, shared_weights
    from weightshare.networks import get_network

    directory = Path(config.log_dir)
    k_map, settings = read_k_map(directory)
    check_output_dir("--log_file DIR/export", directory / "export")
    spec = get_network(config.network)
    options = model_options(config)
    if options["model"] is None and settings.get("network") not in (None, spec.name):
        raise UserError(
            f"{directory} was written for --network_dataset {settings['network']}; got "
            f"{spec.name}: pass the same model flags as that run"
        )
    if spec.framework == "pytorch" and options["model"] is None:
        options["backend"] = "pytorch"  # the source framework writes both formats
    search, _ = load_splits(spec, config.data_dir, config.dataset_scale, **options)
    backend, source = load_backend(
        spec, config.checkpoint, config.cache_dir, config.data_dir, config.threads, **options
    )
    names = [layer.name for layer in backend.layers()]
    unknown = [n for n in k_map if n not in names]
    if unknown:
        raise UserError(
            f"{directory} names layer {unknown[0]!r}, which this model does not have: pass the "
            "same model flags as the run that wrote it"
        )
    granularity = settings.get("granularity", config.granularity)
    init = settings.get("init", config.init)
    try:
        perbit = PerBitOptions(
            settings.get("clustering", "kmeans"),
            tuple(settings.get("correct") or ()),
            settings.get("calibration_images") or 1024,
        )
    except UserError as exc:
        raise UserError(f"{directory}: {exc}") from None
    calibration = (
        load_calibration(spec, config.data_dir, perbit.calibration_images, **options)
        if perbit.needs_calibration
        else None
    )
    calibrator = Calibrator(backend, perbit, calibration)
    pruned = settings["sparsity_per_layer"]
    shared_layers = cluster_layers(backend, k_map, granularity, init, calibrator.importance, pruned)
    out = directory / "export"
    stem = spec.name if options["model"] is None else Path(options["model"]).stem
    notes: list[str] = []
    with shared_weights(backend, shared_layers) as dense:
        calibrator.apply(backend, dense)  # the written files hold the corrected tensors
        shared = backend.evaluate(search)
        files = get_plugin(backend.name).write(backend, out, stem, notes)
    result = {
        "source": str(source),
        "backend": backend.name,
        "granularity": granularity,
        "init": init,
        **perbit.as_dict(),
        "k_per_layer": k_map,
        **({"sparsity_per_layer": pruned} if pruned else {}),
        "files": {p.name: _sha256(p) for p in files},
        "accuracy_search": shared.top1,
        "notes": notes,
    }
    onnx_files = [p for p in files if p.suffix == ".onnx"]
    if onnx_files:
        transform = getattr(backend, "transform", None) or _transform_of(spec)
        exported = OnnxRuntimeBackend(onnx_files[0], transform=transform, threads=config.threads)
        exported = exported.evaluate(search)
        result["accuracy_search_onnx"] = exported.top1
    write_text_atomic(out / "export.json", json.dumps(result, indent=2))
    print(f"exported {len(k_map)} weight-shared layers of {stem} to {out}/")
    for p in files:
        print(f"  {p.name}  ({p.stat().st_size:,} bytes)")
    line = f"search accuracy (top-1): in memory {100 * shared.top1:.2f} %"
    if "accuracy_search_onnx" in result:
        line += f", exported ONNX {100 * result['accuracy_search_onnx']:.2f} %"
    print(line)
    for note in notes:
        print(f"note: {note}")
    return result


def _transform_of(spec):
    from weightshare.networks.transforms import fashion_mnist_transform

    return fashion_mnist_transform(spec.input_size)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags of its own: ``--log_file`` and the shared model flags select what to export
    (``--granularity``/``--init`` apply when the file does not record them)."""
    parser.add_argument_group("export", "uses --log_file DIR and the model flags of the run")


def main(args: argparse.Namespace) -> int:
    """``--mode export`` from parsed flags."""
    config = ExportConfig(log_dir=args.log_file, **model_choice_flags(args))
    run(config)
    return 0
