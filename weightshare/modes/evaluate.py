"""share every layer's weights with a given k and score the result (search + holdout)

The baseline and the candidate are scored on the same images (paired), on the ``search``
split (scaled by ``--dataset_scale``) and on the ``holdout`` split; the model is restored to its
pristine weights afterwards.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from weightshare.dse.clustering import INIT_CHOICES
from weightshare.dse.correction import CLUSTERINGS, PerBitOptions, parse_correct
from weightshare.errors import UserError
from weightshare.modes.model_choice import ModelChoice, model_choice_flags
from weightshare.modes.results_points import is_results, pick_point, sparsity_map
from weightshare.networks import get_network
from weightshare.outputs import check_output_dir, write_text_atomic
from weightshare.types import GRANULARITIES, K_MAX
from weightshare.validation import check_int


@dataclass(frozen=True)
class EvaluateConfig(ModelChoice):
    """Settings of ``--mode evaluate`` (the model, data and clustering flags: the keyword-only
    fields of :class:`~weightshare.modes.model_choice.ModelChoice`).

    Attributes:
        k: one k for every clusterable layer, or None when ``k_per_layer`` is given.
        k_per_layer: layer name -> k; layers not named stay fp32.
        sparsity: layer name -> magnitude-pruning sparsity of a layer of ``k_per_layer``
            before sharing (a ``--prune-grid`` point of results.json); None: none pruned.
        log_file: directory for ``evaluation.json`` (None: print only).
        k_source: where ``k_per_layer`` came from, ``{"file", "trial"}`` (recorded in
            evaluation.json as ``k_per_layer_source``), or None.
        perbit: ``--clustering``, ``--correct``, ``--calibration-images``
            (:mod:`weightshare.dse.correction`).
    """

    k: int | None
    k_per_layer: dict[str, int] | None
    log_file: Path | None = None
    k_source: dict | None = None
    perbit: PerBitOptions = field(default_factory=PerBitOptions)
    sparsity: dict[str, float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sparsity:  # each layer named with a k, each value in [0, 1)
            sparsity_map(self.sparsity, self.k_per_layer or {}, "sparsity")
        if self.sparsity and self.granularity != "layer":
            raise UserError(
                "pruned layers share one codebook: a --prune-grid point needs --granularity "
                f"layer; got {self.granularity!r}"
            )
        if (self.k is None) == (self.k_per_layer is None):
            raise UserError("give exactly one of --k and --k-per-layer")
        if self.k is not None:
            validate_k(self.k, "--k")
        elif not isinstance(self.k_per_layer, dict) or not self.k_per_layer:
            raise UserError(
                f"--k-per-layer must be a non-empty map layer -> k; got {self.k_per_layer!r}"
            )
        else:
            for name, k in self.k_per_layer.items():
                validate_k(k, f"k of layer {name!r}")


def evaluated_name(spec, model: str | None) -> str:
    """The network name results record: the registry name, or ``model:FILE`` for ``--model``."""
    return spec.name if model is None else f"model:{Path(model).name}"


def validate_k(value, where: str) -> int:
    """An int k in [1, K_MAX], else a UserError naming ``where``."""
    return check_int(where, value, 1, K_MAX)


@dataclass(frozen=True)
class KPerLayerFile:
    """What ``--k-per-layer FILE`` gave.

    Attributes:
        k_per_layer: layer name -> k.
        file: the path as given.
        trial: the results.json trial id picked (None for a plain layer -> k map).
        network: the network results.json explored (None for a plain map).
        sparsity: layer -> sparsity of the point's pruned layers (``--prune-grid``), else empty.
    """

    k_per_layer: dict[str, int]
    file: str
    trial: int | None = None
    network: str | None = None
    sparsity: dict[str, float] = field(default_factory=dict)


def read_k_per_layer(path: str | Path, trial: int | str = "best") -> KPerLayerFile:
    """Parse ``--k-per-layer FILE``.

    ``FILE`` is a JSON object ``{"layer name": k, ...}``, or an exploration's ``results.json``:
    then its ``best`` point, or with ``trial`` (``--trial N``) a trial it lists.

    Raises:
        UserError: unreadable or malformed file, a k out of [1, K_MAX], an unknown trial, or
            ``--trial N`` with a plain map.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"--k-per-layer file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--k-per-layer file {path} cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"--k-per-layer file {path} is not valid JSON ({exc})") from None
    picked, network, pruned = None, None, None
    if is_results(data):
        point = pick_point(data, Path(path), trial)
        picked, network = point.get("trial"), data["network"]
        data, pruned = point.get("k_per_layer"), point.get("sparsity_per_layer")
    elif trial != "best":
        raise UserError(
            f"--trial {trial} picks a candidate of an exploration's results.json; "
            f"--k-per-layer {path} is a layer -> k map"
        )
    if not isinstance(data, dict) or not data:
        raise UserError(
            f"--k-per-layer file {path} must hold a non-empty JSON object layer -> k, or be "
            "an exploration's results.json"
        )
    k_map = {str(name): validate_k(k, f"k of layer {name!r} in {path}") for name, k in data.items()}
    sparsity = sparsity_map(pruned, k_map, f"--k-per-layer {path}")
    return KPerLayerFile(k_map, str(path), picked, network, sparsity)


def resolve_k_map(
    layer_names: list[str], k: int | None, k_per_layer: dict[str, int] | None
) -> dict[str, int]:
    """The k of each layer to cluster: all layers at ``k``, or the named ones."""
    if k is not None:
        return {name: k for name in layer_names}
    unknown = [name for name in k_per_layer if name not in layer_names]
    if unknown:
        raise UserError(
            f"--k-per-layer names unknown layer {unknown[0]!r}; layers: {', '.join(layer_names)}"
        )
    return dict(k_per_layer)


def run(config: EvaluateConfig) -> dict:
    """Evaluate one weight-sharing candidate; print the table and return evaluation.json's dict."""
    from weightshare.backends.factory import check_fit
    from weightshare.codecs.sparse import SparseShared
    from weightshare.console import print_layer_table
    from weightshare.dse.correction import Calibrator, check_backend
    from weightshare.dse.objective import ModelLayout
    from weightshare.dse.size import compression_ratio_entropy, entropy_bits, layer_fixed_bits
    from weightshare.modes.loading import (
        load_backend,
        load_calibration,
        load_splits,
        model_options,
    )
    from weightshare.modes.sharing import cluster_layers, shared_weights

    if config.log_file is not None:
        check_output_dir("--log_file", config.log_file)
    spec = get_network(config.network)
    choice = model_options(config)
    search, holdout = load_splits(spec, config.data_dir, config.dataset_scale, **choice)
    backend, source = load_backend(
        spec, config.checkpoint, config.cache_dir, config.data_dir, config.threads, **choice
    )
    check_fit(backend, search)
    check_backend(backend, config.perbit)  # before any scoring: refuse early
    layers = backend.layers()
    k_map = resolve_k_map([layer.name for layer in layers], config.k, config.k_per_layer)

    baseline = {s.name: backend.evaluate(s) for s in (search, holdout)}
    options = config.perbit
    calibration = (
        load_calibration(spec, config.data_dir, options.calibration_images, **choice)
        if options.needs_calibration
        else None
    )
    calibrator = Calibrator(backend, options, calibration)
    shared = cluster_layers(
        backend, k_map, config.granularity, config.init, calibrator.importance, config.sparsity
    )
    with shared_weights(backend, shared) as dense:
        corrections = calibrator.apply(backend, dense)
        candidate = {s.name: backend.evaluate(s) for s in (search, holdout)}

    # a pruned layer's codebook, indices and inertia are those of its survivors
    cores = {n: sw.shared if isinstance(sw, SparseShared) else sw for n, sw in shared.items()}
    pruned = config.sparsity or {}
    rows = []
    for layer in layers:
        sw = cores.get(layer.name)
        rows.append(
            {
                "name": layer.name,
                **({"weight_name": layer.weight_name} if layer.weight_name else {}),
                "kind": layer.kind,
                "n_weights": layer.n_weights,
                "k": None if sw is None else sw.k,
                "k_eff": None if sw is None else sw.k_eff,
                **({"sparsity": pruned.get(layer.name, 0.0)} if pruned else {}),
                "bits": 32
                if sw is None
                else layer_fixed_bits(layer.name, shared[layer.name]) / layer.n_weights,
                "inertia": None if sw is None else sw.inertia,
                "init": None if sw is None else sw.method,
            }
        )
    fixed = {name: layer_fixed_bits(name, sw) for name, sw in shared.items()}
    clustered = ModelLayout(
        {layer.name: layer.n_weights for layer in layers if layer.name in shared},
        backend.n_unclustered(),
    )
    result = {
        "network": evaluated_name(spec, config.model),
        "backend": backend.name,
        "dataset": config.dataset or spec.dataset,
        "checkpoint": str(source),
        "init": config.init,
        "granularity": config.granularity,
        **options.as_dict(),
        **({"corrections": corrections} if corrections else {}),
        "dataset_scale": config.dataset_scale,
        "splits": {"search": len(search), "holdout": len(holdout)},
        "baseline": _scores(baseline[search.name], baseline[holdout.name]),
        "candidate": _scores(candidate[search.name], candidate[holdout.name]),
        "compression_ratio_fixed": clustered.ratio_layers(fixed),
        "compression_ratio_model": clustered.ratio_model(fixed),
        # of the indices and codebooks alone (a pruned layer's positions are not estimated)
        "compression_ratio_entropy_estimate": None
        if pruned
        else compression_ratio_entropy(list(cores.values())),
        "index_entropy_bits": sum(entropy_bits(sw) for sw in cores.values()),
        "layers": rows,
    }
    if config.k_source is not None:
        result["k_per_layer_source"] = config.k_source
    print_layer_table(result)
    if config.log_file is not None:
        out = write_text_atomic(config.log_file / "evaluation.json", json.dumps(result, indent=2))
        print(f"wrote {out}")
    return result


def perbit_options(args: argparse.Namespace) -> PerBitOptions:
    """``--clustering``, ``--correct``, ``--calibration-images`` as :class:`PerBitOptions`."""
    return PerBitOptions(args.clustering, parse_correct(args.correct), args.calibration_images)


def _scores(search, holdout) -> dict:
    return {
        "accuracy_search": search.top1,
        "accuracy_holdout": holdout.top1,
        "top5_search": search.top5,
        "top5_holdout": holdout.top5,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``evaluate`` flags (``--granularity`` and ``--init`` serve the exploration too)."""
    group = parser.add_argument_group("evaluate")
    group.add_argument(
        "--k",
        type=int,
        default=None,
        metavar="K",
        help="shared values per layer, the same for every clusterable layer, in [1, 65536] "
        "(default 16 when --k-per-layer is not given)",
    )
    group.add_argument(
        "--k-per-layer",
        default=None,
        metavar="FILE.json",
        help='JSON object {"layer name": k} (unnamed layers stay fp32), or an exploration\'s '
        "results.json: its best candidate, or --trial N",
    )
    group.add_argument(
        "--granularity",
        choices=GRANULARITIES,
        default="layer",
        help="one codebook per layer (the paper's) or per output channel",
    )
    group.add_argument(
        "--init",
        choices=INIT_CHOICES,
        default="best",
        help="k-means initialisation; 'best' keeps the lowest inertia of all, "
        "the paper's 'linear' included (default: best)",
    )
    group.add_argument(
        "--clustering",
        choices=CLUSTERINGS,
        default="kmeans",
        help="plain k-means, or k-means weighted by each weight's diagonal Fisher information "
        "on the calibration images (PyTorch backend; default: kmeans)",
    )
    group.add_argument(
        "--correct",
        default="none",
        metavar="LIST",
        help="after sharing: 'bias' (per-channel bias correction), 'bn' (re-estimate "
        "BatchNorm statistics), 'bias,bn' or 'none' (default), on the calibration images",
    )
    group.add_argument(
        "--calibration-images",
        type=int,
        default=1024,
        metavar="N",
        help="training images (fixed, seeded subset) used by --clustering weighted and "
        "--correct (default 1024)",
    )


def main(args: argparse.Namespace) -> int:
    """``--mode evaluate`` from parsed flags."""
    from weightshare.modes.encode import parse_trial
    from weightshare.networks.datasets import resolve_data_dir

    if (
        args.dataset is None
        and args.model is None
        and get_network(args.network_dataset).dataset == ("fashionmnist")
    ):
        resolve_data_dir(args.data_dir)
    k_file = None
    if args.k_per_layer is not None:
        k_file = read_k_per_layer(args.k_per_layer, parse_trial(args.trial))
        evaluated = evaluated_name(get_network(args.network_dataset), args.model)
        if k_file.network is not None and k_file.network != evaluated:
            raise UserError(
                f"--k-per-layer {args.k_per_layer} explored {k_file.network}; this run evaluates "
                f"{evaluated} (pass the same --network_dataset / --model)"
            )
    elif args.trial != "best":
        raise UserError(f"--trial {args.trial} needs --k-per-layer results.json")
    k = 16 if args.k is None and k_file is None else args.k
    config = EvaluateConfig(
        k=k,
        k_per_layer=None if k_file is None else k_file.k_per_layer,
        sparsity=None if k_file is None else k_file.sparsity or None,
        k_source=None if k_file is None else {"file": k_file.file, "trial": k_file.trial},
        log_file=args.log_file,
        perbit=perbit_options(args),
        **model_choice_flags(args),
    )
    run(config)
    return 0
