"""The interface between the exploration driver and a search strategy.

A strategy decides what to evaluate next from what has been measured; the driver evaluates
(reusing stored results, confirming on the whole search split, recording every trial) and picks
the final points. The driver offers a strategy the small :class:`Explorer` surface below; a
strategy is any object with the :class:`Strategy` members.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from weightshare.dse.sensitivity import Option
from weightshare.dse.space import FP32, Candidate


class Explorer(Protocol):
    """What the driver offers a strategy.

    Attributes:
        config: the :class:`~weightshare.dse.driver.ExploreConfig`.
        layout: the model's :class:`~weightshare.dse.objective.ModelLayout`.
        grids: explored layer -> its choices: the k values of its grid, or with
            ``--prune-grid`` its (k, sparsity) pairs as ``"k@s"`` (:mod:`weightshare.dse.space`).
        base: fp32 top-1 on the search images; target: the accuracy to meet there.
        options: layer -> its step-1 options (a strategy that makes some sets them; reported).
        surrogate: the strategy's fitted damage -> drop map, if any (reported).
        capacity: evaluations the workers run at once (a strategy that decides step by step
            can evaluate this many candidates per step without idling a worker).
    """

    config: object
    layout: object
    grids: dict[str, tuple[int | str, ...]]
    base: float
    target: float
    options: dict[str, list[Option]]
    surrogate: object
    capacity: int

    def evaluate(
        self,
        phase: str,
        candidates: Sequence[Candidate],
        split: str = "search",
        params_of=None,
        target: float | None = None,
        pass_fail: bool = False,
    ) -> list:
        """Score candidates (stored results reused); the :class:`Record` of each."""
        ...

    def passes(self, record) -> bool:
        """Meets the target, on the whole search split too (confirming it if needed)."""
        ...

    def verdicts(self, records: Sequence) -> list[bool]:
        """:meth:`passes` of each record, the confirmations evaluated together."""
        ...

    def one_layer(self) -> dict[str, dict[int, object]]:
        """Step 1: layer -> k -> Record of that layer shared alone (evaluated once)."""
        ...

    def layer_bits(self, result) -> dict:
        """Bits per clustered layer under the chosen size model."""
        ...

    def size_bytes(self, result) -> float:
        """The size the search minimises, in bytes."""
        ...

    def search(self, choices: dict[str, list[int | str]], seeds: list[Candidate], sampler) -> None:
        """Ask/tell an Optuna ``sampler`` over per-layer ``choices`` (``FP32`` = 0 keeps a
        layer whole) for the search budget, ``seeds`` enqueued first."""
        ...


class Strategy(Protocol):
    """A search strategy (one module each, registered by name in ``STRATEGIES``).

    Attributes:
        default_trials: search-phase trials when ``--n-trials`` is not given.
        default_k_grid: its own k grid (None: the default grid).
        needs_step_one: refuses ``--with_local_optimization 0``.
    """

    default_trials: int
    default_k_grid: tuple[int, ...] | None
    needs_step_one: bool

    def explore(self, explorer: Explorer) -> None:
        """Decide and request every evaluation of the exploration after the baseline."""
        ...


def whole_grids(explorer: Explorer) -> dict[str, list[int | str]]:
    """Every explored layer's choices for a search without step 1: fp32 first, then its grid."""
    return {name: [FP32, *grid] for name, grid in explorer.grids.items()}


def nsga2_sampler(config, population_size: int | None = None):
    """Optuna's NSGA-II sampler seeded by the exploration (``config.seed``), with
    ``population_size`` or the configured ``--population-size``."""
    import optuna

    size = config.population_size if population_size is None else population_size
    return optuna.samplers.NSGAIISampler(population_size=size, seed=config.seed)
