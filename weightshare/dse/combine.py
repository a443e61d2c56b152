"""Step 2: combine the per-layer options into whole-network candidates.

* **Surrogate.** The damage of a combination is predicted additively from the one-layer KL
  divergences (:func:`predicted_damage`); :mod:`weightshare.dse.surrogate` maps it to a top-1
  drop with a power law fitted on real evaluations.
* **Solver.** "Smallest total size with predicted damage within a budget" is a multiple-choice
  knapsack (one option per layer). :func:`solve_knapsack` solves it exactly by dynamic
  programming over the damage discretised in ``units`` steps of the budget (damages rounded
  up, so a returned solution never exceeds the budget).
* **Polish.** :func:`polish_moves` lists the one-layer moves (one option smaller) from a
  point, best size saved per predicted damage first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from weightshare.dse.sensitivity import Option
from weightshare.dse.space import FP32, Candidate


def _chosen(options: Mapping[str, Sequence[Option]], candidate: Candidate) -> dict[str, int]:
    """layer -> index of the candidate's option (layers it leaves out take fp32)."""
    k_map = candidate.as_dict()
    out = {}
    for layer, opts in options.items():
        k = k_map.get(layer, FP32)
        out[layer] = next((i for i, o in enumerate(opts) if o.k == k), -1)
        if out[layer] < 0:
            raise ValueError(f"{layer}: k={k} is not one of its options")
    return out


def predicted_damage(options: Mapping[str, Sequence[Option]], candidate: Candidate) -> float:
    """Additive surrogate: the sum of the candidate's one-layer damages (fp32 layers add 0)."""
    return float(sum(options[layer][i].damage for layer, i in _chosen(options, candidate).items()))


def solve_knapsack(
    options: Mapping[str, Sequence[Option]], budget: float, *, units: int = 400
) -> Candidate | None:
    """Smallest total size with ``sum_l damage_l <= budget``; None when infeasible.

    Args:
        options: layer -> its options (each layer must have at least one).
        budget: allowed predicted damage (summed KL, nats), >= 0.
        units: discretisation of ``budget``; damages are rounded up to whole units.

    Returns:
        The candidate (layers whose choice is fp32 are left out), or None.
    """
    layers = list(options)
    if budget <= 0:
        costs = {
            layer: [0 if o.damage <= 0 else units + 1 for o in opts]
            for layer, opts in options.items()
        }
    else:
        step = budget / units
        costs = {
            layer: [min(units + 1, math.ceil(max(o.damage, 0.0) / step - 1e-9)) for o in opts]
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


def polish_moves(
    options: Mapping[str, Sequence[Option]],
    candidate: Candidate,
    *,
    excluded: frozenset[tuple[str, int]] = frozenset(),
) -> list[Candidate]:
    """The candidate with one layer moved one option smaller, best first.

    Options are sorted by size, so "one option smaller" is the next smaller k that is not
    dominated (one grid step, skipping dominated k). Moves are ordered by bits saved per unit
    of added predicted damage (a move that adds none comes first); ``excluded`` holds
    (layer, k) moves not to propose again (they failed from a larger point).
    """
    k_map = candidate.as_dict()
    scored = []
    for layer, i in _chosen(options, candidate).items():
        if i == 0:
            continue
        here, there = options[layer][i], options[layer][i - 1]
        if (layer, there.k) in excluded:
            continue
        saved = here.bits - there.bits
        added = there.damage - here.damage
        score = math.inf if added <= 0 else saved / added
        scored.append((-score, layer, Candidate.of({**k_map, layer: there.k})))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [c for _, _, c in scored]
