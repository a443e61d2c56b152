"""Framework backends behind one small contract (:class:`~weightshare.backends.base.Backend`).

Each backend lives in its own module and imports its framework only when used; the registry
(:mod:`weightshare.backends.registry`) finds them by name. The value types they return
(:class:`~weightshare.types.LayerInfo`, :class:`~weightshare.types.Accuracy`) live in
:mod:`weightshare.types`.
"""

from weightshare.backends.base import Backend

__all__ = ["Backend"]
