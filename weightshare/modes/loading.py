"""Load a registry network's trained weights into a backend, training it first if none exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from weightshare.dse.correction import PerBitOptions
from weightshare.networks.checkpoints import load_into
from weightshare.networks.registry import NetworkSpec


def load_backend(
    spec: NetworkSpec,
    checkpoint,
    cache_dir: Path,
    data_dir,
    threads: int,
    *,
    backend: str | None = None,
    model=None,
    weights=None,
    dataset=None,
):
    """A backend over ``spec``'s trained weights, or over a user model.

    With the defaults: a :class:`~weightshare.backends.pytorch.PyTorchBackend` over a
    Fashion-MNIST registry network. Weights come from
    :func:`~weightshare.networks.checkpoints.find_checkpoint`; when there are none, the network
    is trained with its documented recipe (as ``--mode train`` would) and the last epoch is used.

    Args:
        backend: ``pytorch``, ``onnxruntime``, ``tensorflow`` or None (the model's own).
        model: ``--model PATH``, a user model file (``.onnx``, ``.keras``/``.h5``, TorchScript,
            or a state dict for ``spec``'s architecture).
        weights: ``--weights PATH``, pretrained weights of an ImageNet zoo network.
        dataset: ``--dataset`` (a string or a DatasetChoice); sets a user model's
            preprocessing. See :mod:`weightshare.backends.factory`.

    Returns:
        (backend, path of the weights or model file).
    """
    from weightshare.backends.factory import build_backend, is_plain
    from weightshare.backends.pytorch import PyTorchBackend
    from weightshare.networks.training import trained_checkpoint

    if not is_plain(spec, backend, model, dataset, weights):
        return build_backend(
            spec,
            checkpoint,
            cache_dir,
            data_dir,
            threads,
            backend=backend,
            model=model,
            weights=weights,
            dataset=dataset,
        )
    path = trained_checkpoint(spec, checkpoint, cache_dir, data_dir, threads)
    model = load_into(spec.build(), path)
    return PyTorchBackend(model, spec.input_size, threads=threads), path


def model_options(args) -> dict:
    """The model-choice flags of parsed CLI ``args`` (or of any config holding them) as keyword
    arguments of
    :func:`load_backend` and :func:`load_splits` (``backend``, ``model``, ``weights``,
    ``dataset``)."""
    return {
        "backend": getattr(args, "backend", None),
        "model": getattr(args, "model", None),
        "weights": getattr(args, "weights", None),
        "dataset": getattr(args, "dataset", None),
    }


def load_splits(
    spec: NetworkSpec, data_dir, dataset_scale: float = 1.0, *, dataset=None, model=None, **_
):
    """The ``(search, holdout)`` splits to score ``spec`` (or a user ``model``) on.

    The dataset is ``dataset`` (``--dataset``) when given, else the network's own
    (Fashion-MNIST, or ImageNet under ``data_dir``); a user model without ``--dataset`` gets
    Fashion-MNIST. ``dataset_scale`` keeps the first fraction of ``search`` only. Extra keyword
    arguments (the rest of :func:`model_options`) are ignored.
    """
    from weightshare.networks.inputs import load_dataset_split

    choice = _dataset_choice(spec, dataset, model)
    search = load_dataset_split(choice, "search", data_dir, dataset_scale)
    holdout = load_dataset_split(choice, "holdout", data_dir)
    return search, holdout


def load_calibration(spec: NetworkSpec, data_dir, n: int, *, dataset=None, model=None, **_):
    """The ``n`` calibration images (training split) of the dataset :func:`load_splits` uses.

    Raises:
        UserError: that dataset has no training split, or ``n`` is out of range.
    """
    from weightshare.networks.inputs import load_calibration_split

    return load_calibration_split(_dataset_choice(spec, dataset, model), n, data_dir)


def _dataset_choice(spec: NetworkSpec, dataset, model):
    """The DatasetChoice of ``--dataset``, else the network's (a user model: Fashion-MNIST)."""
    from weightshare.networks.inputs import DatasetChoice, parse_dataset

    choice = dataset if isinstance(dataset, DatasetChoice) else parse_dataset(dataset)
    if choice is None:
        native = spec.dataset
        if model is not None:
            from weightshare.backends.registry import STATE_DICT, model_format

            native = "fashionmnist" if model_format(model) != STATE_DICT else spec.dataset
        choice = DatasetChoice(native)
    return choice


@dataclass(frozen=True)
class EvaluatorFactory:
    """A picklable recipe for an :class:`~weightshare.dse.evaluator.Evaluator`: Ray workers call
    it once to load the model, the splits and the clustering settings.

    Attributes:
        network: registry name.
        checkpoint: weights file (resolved by the driver, so every worker loads the same one).
        data_dir: Fashion-MNIST directory or None.
        dataset_scale: fraction of the search split used by the search.
        threads: torch threads of this worker.
        granularity, init, seed: clustering settings.
        backend, model, weights, dataset: the model choice (``--backend``, ``--model``,
            ``--weights``, ``--dataset``; :func:`model_options`), None for the defaults.
        cache_dir: cache root (the ONNX exports); None: the default cache.
        perbit: ``--clustering`` / ``--correct`` / ``--calibration-images``.
    """

    network: str
    checkpoint: str
    data_dir: str | None
    dataset_scale: float
    threads: int
    granularity: str = "layer"
    init: str = "best"
    seed: int = 0
    backend: str | None = None
    model: str | None = None
    weights: str | None = None
    dataset: str | None = None
    cache_dir: str | None = None
    perbit: PerBitOptions = field(default_factory=PerBitOptions)

    def __call__(self):
        from weightshare.dse.evaluator import Evaluator
        from weightshare.networks import get_network
        from weightshare.networks.checkpoints import default_cache_dir

        spec = get_network(self.network)
        options = model_options(self)
        cache_dir = Path(self.cache_dir) if self.cache_dir else default_cache_dir()
        backend, _ = load_backend(
            spec, self.checkpoint, cache_dir, self.data_dir, self.threads, **options
        )
        search, _ = load_splits(spec, self.data_dir, self.dataset_scale, **options)
        search_full, holdout = load_splits(spec, self.data_dir, **options)
        splits = {"search": search, "search_full": search_full, "holdout": holdout}
        if self.dataset_scale == 1.0:
            del splits["search_full"]
        calibrator = None
        if self.perbit.needs_calibration:
            from weightshare.dse.correction import Calibrator

            n = self.perbit.calibration_images
            calibration = load_calibration(spec, self.data_dir, n, **options)
            calibrator = Calibrator(backend, self.perbit, calibration)
        return Evaluator(
            backend,
            splits,
            granularity=self.granularity,
            init=self.init,
            seed=self.seed,
            file_sizer=self.file_sizer(spec),
            calibrator=calibrator,
        )

    def file_sizer(self, spec):
        """Sizes the model file ``--mode encode`` writes for a point of this exploration
        (a registry PyTorch network's own weights, ANS-coded indices, fp32 codebooks), or None
        for models encode does not write (user models, other frameworks, --weights)."""
        from weightshare.codecs.model import ModelFileSizer, file_meta
        from weightshare.networks.checkpoints import model_state

        if self.model is not None or self.weights is not None:
            return None
        if getattr(spec, "framework", "pytorch") != "pytorch" or self.checkpoint is None:
            return None
        meta = file_meta(
            granularity=self.granularity,
            init=self.init,
            seed=self.seed,
            coder="ans",
            codebook_dtype="fp32",
        )
        state = model_state(load_into(spec.build(), Path(self.checkpoint)))
        return ModelFileSizer(state, network=spec.name, meta=meta)
