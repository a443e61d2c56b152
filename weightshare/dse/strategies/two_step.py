"""The two-step heuristic: step 1 on KL, then a calibrated knapsack, a polish and NSGA-II.

1. **Step 1.** Each layer alone at each k of its grid; its damage is the mean KL divergence
   from the fp32 outputs. Per layer, the measured Pareto-efficient (size, KL) points plus fp32
   are its options.
2. **Knapsack.** Smallest model whose summed one-layer KL fits a budget; the budget is searched
   on real results, guided by the power law from summed KL to top-1 drop refitted after each
   evaluation (:mod:`weightshare.dse.surrogate`).
3. **Polish.** From the best passing point, one layer one option smaller, the most bits saved
   per predicted KL first, each verified for real (a failure is certain after early stopping),
   until no move passes.
4. **NSGA-II**, seeded with every point of 2-3, over the options whose one-layer KL is at most
   twice the largest passing budget.

Without step 1 (``--with_local_optimization 0``) it is NSGA-II over the whole grids seeded with
one uniform k for every layer.
"""

from __future__ import annotations

import math

from weightshare.dse import combine, sensitivity, surrogate
from weightshare.dse.sensitivity import Option
from weightshare.dse.space import FP32, Candidate
from weightshare.dse.strategies.base import Explorer, nsga2_sampler

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
            choices = {n: [FP32, *g] for n, g in explorer.grids.items()}
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

    Returns:
        (every candidate evaluated, the largest one-layer KL worth keeping as a search choice:
        twice the largest passing budget, or inf when none passed).
    """
    max_loss = explorer.base - explorer.target
    law, outcomes, pairs = surrogate.PRIOR, [], []
    verdicts: dict[Candidate, bool] = {}
    best = None
    for _ in range(MAX_BUDGETS):
        budget = surrogate.next_budget(outcomes, law, max_loss)
        if budget is None:
            break
        cand = combine.solve_knapsack(options, budget)
        if cand not in verdicts:
            scored = explorer.evaluate("knapsack", [cand], target=explorer.target)
            if not scored:
                break
            (record,) = scored
            verdicts[cand] = explorer.passes(record)
            pairs.append((combine.predicted_damage(options, cand), explorer.base - record.accuracy))
            law = surrogate.fit_power_law(pairs)
            size = explorer.size_bytes(record)
            if verdicts[cand] and (best is None or size < explorer.size_bytes(best)):
                best = record
        outcomes.append((budget, verdicts[cand]))
    explorer.surrogate = law
    lo, _ = surrogate.bracket(outcomes)
    if best is None:
        return list(verdicts), math.inf
    failed: set[tuple[str, int]] = set()
    left = explorer.config.polish_per_layer * len(options)
    moved = True
    while moved and left > 0:
        moved = False
        for cand in combine.polish_moves(options, best.candidate, excluded=frozenset(failed)):
            if left <= 0:
                break
            left -= 1
            scored = explorer.evaluate("polish", [cand], target=explorer.target, pass_fail=True)
            if not scored:
                continue
            (record,) = scored
            verdicts[cand] = explorer.passes(record)
            if verdicts[cand]:
                best, moved = record, True
                break
            (change,) = set(cand.k) - set(best.candidate.k)
            failed.add(change)
    return list(verdicts), 2 * lo if lo > 0 else math.inf
