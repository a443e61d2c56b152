"""Load a registry network's trained weights into a backend, training it first if none exist."""

from __future__ import annotations

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
