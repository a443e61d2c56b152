"""weightshare: design-space exploration for retraining-free weight sharing of CNNs."""

__version__ = "0.1.0"
