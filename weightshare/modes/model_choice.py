"""The model, data and clustering flags that ``--mode evaluate`` and ``--mode export`` share,
as one validated config base (keyword-only fields, so each mode's own fields come first)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from weightshare.backends.registry import BACKEND_NAMES
from weightshare.dse.clustering import INIT_CHOICES
from weightshare.networks import get_network
from weightshare.types import GRANULARITIES
from weightshare.validation import check_choice, check_float, check_int, check_optional_choice


@dataclass(frozen=True, kw_only=True)
class ModelChoice:
    """Which model to load, which images to score it on, how to cluster it.

    Attributes:
        network: registry name (``--network_dataset``).
        granularity: ``layer`` or ``channel`` (one codebook per output channel).
        init: k-means initialisation (``best``, ``linear``, ``quantile``, ``kmeans++``).
        dataset_scale: fraction of the search split's images used, in (0, 1].
        data_dir: Fashion-MNIST IDX directory (None: the Debian package's).
        checkpoint: weights file (None: committed baseline, else the train cache).
        cache_dir: root of the checkpoint cache.
        threads: torch threads, >= 1.
        backend, model, weights, dataset: the model choice (``--backend``, ``--model``,
            ``--weights``, ``--dataset``; see :func:`weightshare.modes.loading.load_backend`).
    """

    network: str
    granularity: str = "layer"
    init: str = "best"
    dataset_scale: float = 1.0
    data_dir: str | None = None
    checkpoint: str | None = None
    cache_dir: Path = Path(".")
    threads: int = 2
    backend: str | None = None
    model: str | None = None
    weights: str | None = None
    dataset: str | None = None

    def __post_init__(self) -> None:
        get_network(self.network)
        check_choice("--granularity", self.granularity, GRANULARITIES)
        check_choice("--init", self.init, INIT_CHOICES)
        check_float("--dataset_scale", self.dataset_scale, 0, 1, low_open=True)
        check_int("--threads", self.threads, 1)
        check_optional_choice("--backend", self.backend, BACKEND_NAMES)


def model_choice_flags(args) -> dict:
    """The :class:`ModelChoice` fields from parsed command-line ``args`` (``network`` is
    ``--network_dataset``; every other field has its flag's name), as keyword arguments."""
    names = [f.name for f in fields(ModelChoice) if f.name != "network"]
    return {"network": args.network_dataset, **{name: getattr(args, name) for name in names}}
