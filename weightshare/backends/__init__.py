"""Framework backends behind one small contract (:class:`~weightshare.backends.base.Backend`).

Each backend lives in its own module and imports its framework only when used.
"""

from weightshare.backends.base import LAYER_KINDS, Accuracy, Backend, LayerInfo

__all__ = ["LAYER_KINDS", "Accuracy", "Backend", "LayerInfo"]
