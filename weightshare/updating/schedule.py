"""How the training split arrives: a seeded order, cut into rounds, and the re-init trigger.

Round ``r`` trains on the first ``sizes[r]`` images of one seeded permutation of the training
split (all data collected so far, as the seed's ``ConcatDataset``): ``sizes[0] = initial``,
``sizes[r] = min(initial + r * per_round, N)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weightshare.errors import UserError


@dataclass(frozen=True)
class RoundSchedule:
    """Data arrival.

    Attributes:
        initial: images before the first deployment (round 0).
        per_round: images added in each later round.
        rounds: number of rounds (round 0 included).
        seed: seed of the arrival order.
    """

    initial: int
    per_round: int
    rounds: int
    seed: int = 0

    def check(self, available: int) -> RoundSchedule:
        """Validate against ``available`` training images; UserError names the flag."""
        if not 1 <= self.initial <= available:
            raise UserError(
                f"--initial-samples must be an int in [1, {available}]; got {self.initial}"
            )
        if self.per_round < 0:
            raise UserError(f"--samples-per-round must be an int >= 0; got {self.per_round}")
        if not 1 <= self.rounds <= 1000:
            raise UserError(f"--rounds must be an int in [1, 1000]; got {self.rounds}")
        return self

    def sizes(self, available: int) -> list[int]:
        """Images held in each round, non-decreasing, capped at ``available``."""
        return [min(self.initial + r * self.per_round, available) for r in range(self.rounds)]

    def order(self, available: int) -> np.ndarray:
        """The arrival order: a seeded permutation of ``range(available)``, int64."""
        return np.random.default_rng(self.seed).permutation(available)


def reinit_due(size: int, size_at_last_init: int) -> bool:
    """The seed's trigger: the data has more than doubled since the last (re-)initialisation."""
    return size > 2 * size_at_last_init
