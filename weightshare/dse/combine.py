"""Step 2: combine the per-layer options into whole-network candidates.

* **Surrogate.** The loss of a combination is predicted additively from the one-layer losses,
  scaled by a factor ``alpha`` fitted against real evaluations:
  ``predicted = alpha * sum_l max(loss_l, 0)``.
* **Solver.** "Smallest total size with predicted loss within a budget" is a multiple-choice
  knapsack (one option per layer). :func:`solve_knapsack` solves it exactly by dynamic
  programming over the loss discretised in ``units`` steps of the budget (losses rounded up,
  so a returned solution never exceeds the budget).
* **Ladder.** :func:`ladder` solves at several budgets, giving candidates from safe to bold;
  they are evaluated for real, ``alpha`` is recalibrated (:func:`calibrate`) and the ladder is
  solved again around the budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from weightshare.dse.sensitivity import Option
from weightshare.dse.space import Candidate


def predicted_loss(options: Mapping[str, Sequence[Option]], candidate: Candidate) -> float:
    """Additive surrogate before scaling: ``sum_l max(loss_l(k_l), 0)`` (fp32 layers add 0)."""
    k_map = candidate.as_dict()
    total = 0.0
    for layer, opts in options.items():
        k = k_map.get(layer)
        for opt in opts:
            if opt.k == (k if k is not None else 0):
                total += max(opt.loss, 0.0)
                break
    return total


def solve_knapsack(
    options: Mapping[str, Sequence[Option]], budget: float, *, units: int = 400
) -> Candidate | None:
    """Smallest total size with ``sum_l max(loss_l, 0) <= budget``; None when infeasible.

    Args:
        options: layer -> its options (each layer must have at least one).
        budget: allowed predicted loss (fraction of accuracy, before ``alpha``), >= 0.
        units: discretisation of ``budget``; losses are rounded up to whole units.

    Returns:
        The candidate (layers whose choice is fp32 are left out), or None.
    """
    layers = list(options)
    if budget <= 0:
        costs = {
            layer: [0 if o.loss <= 0 else units + 1 for o in opts]
            for layer, opts in options.items()
        }
    else:
        step = budget / units
        costs = {
            layer: [min(units + 1, math.ceil(max(o.loss, 0.0) / step - 1e-9)) for o in opts]
            for layer, opts in options.items()
        }
    inf = np.inf
    # best[b] = min bits with total cost exactly <= b after the layers so far
    best = np.zeros(units + 1)
    choice = []
    for layer in layers:
        new = np.full(units + 1, inf)
        arg = np.full(units + 1, -1, dtype=np.int64)
        for i, opt in enumerate(options[layer]):
            c = costs[layer][i]
            if c > units:
                continue
            shifted = np.full(units + 1, inf)
            shifted[c:] = best[: units + 1 - c] + opt.bits
            better = shifted < new
            new[better], arg[better] = shifted[better], i
        best = new
        choice.append(arg)
    if not np.isfinite(best[units]):
        return None
    b, picks = units, {}
    for layer, arg in zip(reversed(layers), reversed(choice), strict=True):
        i = int(arg[b])
        picks[layer] = options[layer][i].k
        b -= costs[layer][i]
    return Candidate.of(picks)


def ladder(
    options: Mapping[str, Sequence[Option]],
    allowed_loss: float,
    alpha: float,
    scales: Sequence[float],
) -> list[Candidate]:
    """Distinct knapsack solutions at budgets ``scale * allowed_loss / alpha``, in order."""
    seen, out = set(), []
    for scale in scales:
        candidate = solve_knapsack(options, max(0.0, scale * allowed_loss / alpha))
        if candidate is not None and candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
    return out


def calibrate(pairs: Sequence[tuple[float, float]], floor: float = 0.25) -> float:
    """``alpha`` minimising ``sum (alpha * predicted - real)^2`` over pairs with predicted > 0.

    Returns 1.0 without usable pairs; never less than ``floor`` (real losses on few images are
    noisy and can even be negative).
    """
    usable = [(p, r) for p, r in pairs if p > 0]
    if not usable:
        return 1.0
    alpha = sum(p * r for p, r in usable) / sum(p * p for p, _ in usable)
    return max(floor, alpha)
