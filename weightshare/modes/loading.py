"""Load a registry network's trained weights into a backend, training it first if none exist."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from weightshare.networks.checkpoints import checkpoint_dir, find_checkpoint, load_into
from weightshare.networks.registry import NetworkSpec


def load_backend(spec: NetworkSpec, checkpoint, cache_dir: Path, data_dir, threads: int):
    """A :class:`~weightshare.backends.pytorch.PyTorchBackend` over ``spec``'s trained weights.

    Weights come from :func:`~weightshare.networks.checkpoints.find_checkpoint`; when there are
    none, the network is trained with its documented recipe (as ``--mode train`` would) and the
    last epoch is used.

    Returns:
        (backend, path of the weights file).
    """
    from weightshare.backends.pytorch import PyTorchBackend

    path = find_checkpoint(spec.name, checkpoint, cache_dir)
    if path is None:
        from weightshare.networks.datasets import load_split
        from weightshare.networks.training import train

        print(
            f"no trained weights for {spec.name}: training it now ({spec.recipe.epochs} epochs, "
            f"checkpoints in {checkpoint_dir(cache_dir, spec.name)})"
        )
        logs = train(
            spec,
            load_split("train", data_dir),
            load_split("search", data_dir),
            checkpoint_dir(cache_dir, spec.name),
            threads=threads,
        )
        path = Path(logs[-1].checkpoint)
    model = load_into(spec.build(), path)
    return PyTorchBackend(model, spec.input_size, threads=threads), path


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
    """

    network: str
    checkpoint: str
    data_dir: str | None
    dataset_scale: float
    threads: int
    granularity: str = "layer"
    init: str = "best"
    seed: int = 0

    def __call__(self):
        from weightshare.dse.evaluator import Evaluator
        from weightshare.networks import get_network
        from weightshare.networks.datasets import load_split

        spec = get_network(self.network)
        backend, _ = load_backend(spec, self.checkpoint, Path("."), self.data_dir, self.threads)
        splits = {
            "search": load_split("search", self.data_dir, self.dataset_scale),
            "search_full": load_split("search", self.data_dir),
            "holdout": load_split("holdout", self.data_dir),
        }
        if self.dataset_scale == 1.0:
            del splits["search_full"]
        return Evaluator(
            backend, splits, granularity=self.granularity, init=self.init, seed=self.seed
        )
