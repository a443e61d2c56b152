"""The two-step surrogate: summed one-layer KL -> predicted top-1 drop, and the budget search.

* **Damage.** The predicted damage of a combination is the sum of its layers' one-layer KL
  divergences (nats, from step 1). Near the target the real KL is 1.2-1.4x that sum with a
  log-log slope of about 1 (``shared/research/search_signal.md``): additive up to a factor.
* **Map.** The predicted top-1 drop is a power law ``a * damage ** b`` fitted by least squares
  in log-log space on the real evaluations as they arrive (:func:`fit_power_law`); before there
  are two usable points it is :data:`PRIOR` (or the prior's slope through the one point).
* **Budget.** The knapsack's damage budget is searched on real results (:func:`next_budget`):
  the largest budget known to pass and the smallest known to fail bracket the answer; the next
  budget is where the fitted map predicts the allowed drop, kept strictly inside the bracket
  (else the bracket's geometric middle). With several workers, :func:`next_budgets` adds budgets
  that split the widest remaining gaps of the bracket, so one round of parallel evaluations
  narrows it as much as possible.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Bracket growth while no budget has failed (or passed) yet, and the ratio hi / lo at which
# the budget search stops.
GROWTH = 4.0
RESOLUTION = 1.08
# Slopes outside this range come from noise on few points, not from the network.
SLOPE_RANGE = (0.5, 2.0)


@dataclass(frozen=True)
class PowerLaw:
    """``drop = a * damage ** b`` (drop as a fraction of accuracy, damage in nats).

    Attributes:
        a: scale (> 0).
        b: log-log slope (> 0).
        n_points: real evaluations it was fitted on (0 for the prior).
    """

    a: float
    b: float
    n_points: int = 0

    def drop(self, damage: float) -> float:
        """Predicted top-1 drop (fraction) of a combination whose summed one-layer KL is
        ``damage``; 0 for no damage."""
        return self.a * damage**self.b if damage > 0 else 0.0

    def damage_for(self, drop: float) -> float:
        """The summed KL whose predicted drop is ``drop`` (inverse of :meth:`drop`)."""
        return (drop / self.a) ** (1.0 / self.b) if drop > 0 else 0.0


# Slope 1 (KL is additive up to a factor); a drop of 1 point per 0.05 nats of summed KL is the
# order of magnitude seen on the registry networks. The bracket search corrects a wrong scale.
PRIOR = PowerLaw(a=0.2, b=1.0)


def fit_power_law(pairs: Sequence[tuple[float, float]], prior: PowerLaw = PRIOR) -> PowerLaw:
    """Fit ``a * damage ** b`` to (predicted damage, real drop) pairs.

    Pairs with damage <= 0 or drop <= 0 carry no log-log information and are left out. With
    fewer than two distinct damages left, the prior's slope goes through the points' geometric
    mean (or the prior itself without any point). The slope is clipped to ``SLOPE_RANGE``.
    """
    usable = [(d, r) for d, r in pairs if d > 0 and r > 0]
    if not usable:
        return prior
    x = np.log([d for d, _ in usable])
    y = np.log([r for _, r in usable])
    if len(usable) >= 2 and np.ptp(x) > 1e-9:
        b, _ = np.polyfit(x, y, 1)
        b = float(np.clip(b, *SLOPE_RANGE))
    else:
        b = prior.b
    a = float(np.exp(np.mean(y - b * x)))
    return PowerLaw(a, b, len(usable))


def bracket(outcomes: Sequence[tuple[float, bool]]) -> tuple[float, float]:
    """(largest passing budget, smallest failing budget above it) of (budget, passed) pairs;
    0 and inf where there is none."""
    lo = max((b for b, ok in outcomes if ok), default=0.0)
    hi = min((b for b, ok in outcomes if not ok and b > lo), default=math.inf)
    return lo, hi


def next_budget(
    outcomes: Sequence[tuple[float, bool]], law: PowerLaw, max_drop: float
) -> float | None:
    """The next damage budget to try, or None once the bracket is within ``RESOLUTION``.

    Args:
        outcomes: (budget, passed) of the budgets tried so far (a budget passes when the
            knapsack's solution at it met the target for real).
        law: the current map from damage to drop.
        max_drop: the drop the target allows (fraction).
    """
    guess = law.damage_for(max_drop)
    if not outcomes:
        return guess
    lo, hi = bracket(outcomes)
    if math.isinf(hi):
        return max(guess, lo * GROWTH)
    if lo == 0.0:
        return min(guess, hi / GROWTH)
    if hi / lo <= RESOLUTION:
        return None
    if lo * math.sqrt(RESOLUTION) < guess < hi / math.sqrt(RESOLUTION):
        return guess
    return math.sqrt(lo * hi)


def next_budgets(
    outcomes: Sequence[tuple[float, bool]], law: PowerLaw, max_drop: float, n: int
) -> list[float]:
    """Up to ``n`` budgets to evaluate together (in this order), [] once the search is done.

    The first is :func:`next_budget`'s. Each further one is the geometric middle of the widest
    gap (in log space, the lower one on a tie) left between the bracket's ends and the budgets
    chosen so far, among gaps wider than ``RESOLUTION``; a side of the bracket with no end yet
    counts as ending ``GROWTH ** 2`` from the first budget (so its first split is ``GROWTH``
    from it, as :func:`next_budget` grows). Deterministic in its arguments; with ``n = 1`` it
    is ``[next_budget(...)]``.

    Args:
        outcomes, law, max_drop: as for :func:`next_budget`.
        n: most budgets wanted (the number of workers), >= 1.
    """
    first = next_budget(outcomes, law, max_drop)
    if first is None:
        return []
    lo, hi = bracket(outcomes)
    # a side of the bracket without an end yet counts as ending GROWTH ** 2 from the first
    low = lo if lo > 0 else first / GROWTH**2
    high = hi if math.isfinite(hi) else first * GROWTH**2
    chosen = [first]
    while len(chosen) < n:
        ends = [low, *sorted(chosen), high]
        gaps = [
            (math.log(b / a), math.sqrt(a * b))
            for a, b in itertools.pairwise(ends)
            if b / a > RESOLUTION
        ]
        if not gaps:
            break
        chosen.append(max(gaps, key=lambda g: g[0])[1])
    return chosen
