"""Networks by name (``--network_dataset``), their data and their training."""

from weightshare.networks.registry import (
    DEFAULT_NETWORK,
    MLPERF_RATIO,
    NETWORKS,
    NetworkSpec,
    TrainRecipe,
    get_network,
)

__all__ = [
    "DEFAULT_NETWORK",
    "MLPERF_RATIO",
    "NETWORKS",
    "NetworkSpec",
    "TrainRecipe",
    "get_network",
]
