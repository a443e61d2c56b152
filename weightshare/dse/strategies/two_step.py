"""The two-step heuristic: step 1 on KL, then a calibrated knapsack, a polish and NSGA-II.

1. **Step 1.** Each layer alone at each k of its grid; its damage is the mean KL divergence
   from the fp32 outputs. Per layer, the measured Pareto-efficient (size, KL) points plus fp32
   are its options.
2. **Knapsack.** Smallest model whose summed one-layer KL fits a budget; the budget is searched
   on real results, guided by the power law from summed KL to top-1 drop refitted after each
   evaluation (:mod:`weightshare.dse.surrogate`); one budget per worker at a time.
3. **Polish.** From the best passing point, one layer one option smaller, the most bits saved
   per predicted KL first, each verified for real (a failure is certain after early stopping),
   one move per worker at a time, until no move passes.
4. **NSGA-II**, seeded with every point of 2-3, over the options whose one-layer KL is at most
   twice the largest passing budget.

Without step 1 (``--with_local_optimization 0``) it is NSGA-II over the whole grids seeded with
one uniform k for every layer.
"""

from __future__ import annotations

import math

from weightshare.dse import combine, sensitivity, surrogate
from weightshare.dse.sensitivity import Option
from weightshare.dse.space import Candidate
from weightshare.dse.strategies.base import Explorer, nsga2_sampler, whole_grids

MAX_BUDGETS = 16  # knapsack budgets tried by the bracket search
UNIFORM_SEEDS = (256, 64, 32, 16, 8, 4)  # without step 1


class TwoStep:
    default_trials = 100
    default_k_grid = None
    needs_step_one = False

    def explore(self, explorer: Explorer) -> None:
        cfg = explorer.config
        sampler = nsga2_sampler(cfg)
        if not cfg.with_local_optimization:
            uniform = (
                Candidate.of({n: k for n, g in explorer.grids.items() if k in g})
                for k in UNIFORM_SEEDS
            )
            choices = whole_grids(explorer)
            explorer.search(choices, [c for c in uniform if c.k], sampler)
            return
        options = explorer.options = {
            layer: sensitivity.pareto_options(
                [Option(k, explorer.layer_bits(r)[layer], r.kl) for k, r in by_k.items()],
                explorer.layout.n_weights[layer] * 32.0,
            )
            for layer, by_k in explorer.one_layer().items()
        }
        seeds, cap = knapsack_and_polish(explorer, options)
        choices = {layer: [o.k for o in opts if o.damage <= cap] for layer, opts in options.items()}
        explorer.search(choices, seeds, sampler)


def knapsack_and_polish(
    explorer: Explorer, options: dict[str, list[Option]]
) -> tuple[list[Candidate], float]:
    """Steps 2 and 3: knapsack budgets searched on real results, then the polish.

    Both evaluate ``explorer.capacity`` candidates at a time (one per worker) and decide from
    the whole batch in a fixed order, never in the order the workers finish: the same command
    gives the same points.

    Returns:
        (every candidate evaluated, the largest one-layer KL worth keeping as a search choice:
        twice the largest passing budget, or inf when none passed).
    """
    max_loss = explorer.base - explorer.target
    width = max(1, explorer.capacity)
    law, outcomes, pairs = surrogate.PRIOR, [], []
    verdicts: dict[Candidate, bool] = {}
    best = None
    while len(outcomes) < MAX_BUDGETS:
        budgets = surrogate.next_budgets(
            outcomes, law, max_loss, min(width, MAX_BUDGETS - len(outcomes))
        )
        if not budgets:
            break
        cands = {b: combine.solve_knapsack(options, b) for b in budgets}
        new = list(dict.fromkeys(c for c in cands.values() if c not in verdicts))
        scored = explorer.evaluate("knapsack", new, target=explorer.target) if new else []
        if len(scored) < len(new):
            break  # a worker was lost for good
        for record, ok in zip(scored, explorer.verdicts(scored), strict=True):
            verdicts[record.candidate] = ok
            predicted = combine.predicted_damage(options, record.candidate)
            pairs.append((predicted, explorer.base - record.accuracy))
            if ok and (best is None or explorer.size_bytes(record) < explorer.size_bytes(best)):
                best = record
        law = surrogate.fit_power_law(pairs)
        outcomes.extend((b, verdicts[c]) for b, c in cands.items())
    explorer.surrogate = law
    lo, _ = surrogate.bracket(outcomes)
    if best is None:
        return list(verdicts), math.inf
    return polish(explorer, options, best, verdicts, width), 2 * lo if lo > 0 else math.inf


def polish(
    explorer: Explorer,
    options: dict[str, list[Option]],
    best,
    verdicts: dict[Candidate, bool],
    width: int,
) -> list[Candidate]:
    """Step 3: from ``best``, the ``width`` best one-layer moves not yet failed, evaluated
    together; the first passing one in move order becomes the new point and a failed move is
    not proposed again; until no move is left or the ``polish_per_layer`` budget is spent.
    With ``width = 1`` it is the sequential polish (each move decides the next).

    Returns:
        Every candidate evaluated by steps 2 and 3 (``verdicts`` is updated in place).
    """
    failed: set[tuple[str, int]] = set()
    left = explorer.config.polish_per_layer * len(options)
    while left > 0:
        moves = combine.polish_moves(options, best.candidate, excluded=frozenset(failed))
        moves = moves[: min(width, left)]
        if not moves:
            break
        left -= len(moves)
        scored = explorer.evaluate("polish", moves, target=explorer.target, pass_fail=True)
        by_cand = dict(zip([r.candidate for r in scored], explorer.verdicts(scored), strict=True))
        moved = None
        for cand in moves:
            if cand not in by_cand:
                continue  # lost with its worker
            verdicts[cand] = by_cand[cand]
            if by_cand[cand]:
                moved = moved or next(r for r in scored if r.candidate == cand)
            else:
                (change,) = set(cand.k) - set(best.candidate.k)
                failed.add(change)
        best = moved or best
    return list(verdicts)
