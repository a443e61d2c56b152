"""Search strategies as plug-ins: one module each behind :class:`Strategy`, named once here.

A new strategy is one module with a class that has the :class:`Strategy` members, plus its
line in ``STRATEGIES``; ``--optimization`` accepts every name of the registry.
"""

from __future__ import annotations

from weightshare.dse.strategies.base import Explorer, Strategy
from weightshare.dse.strategies.nsga2 import NSGA2
from weightshare.dse.strategies.paper import PAPER_K_GRID, Paper
from weightshare.dse.strategies.tpe import TPE
from weightshare.dse.strategies.two_step import TwoStep

STRATEGIES: dict[str, Strategy] = {
    "two_step_optimization": TwoStep(),
    "nsga2": NSGA2(),
    "tpe": TPE(),
    "paper": Paper(),
}
OPTIMIZATIONS = tuple(STRATEGIES)
DEFAULT_OPTIMIZATION = OPTIMIZATIONS[0]

__all__ = [
    "DEFAULT_OPTIMIZATION",
    "OPTIMIZATIONS",
    "PAPER_K_GRID",
    "STRATEGIES",
    "Explorer",
    "Strategy",
]
