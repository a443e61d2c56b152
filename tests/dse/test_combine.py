import itertools

import numpy as np
import pytest

from weightshare.dse.combine import calibrate, ladder, predicted_loss, solve_knapsack
from weightshare.dse.sensitivity import Option
from weightshare.dse.space import FP32, Candidate


def _random_options(rng, n_layers, n_opts):
    options = {}
    for layer in range(n_layers):
        bits = np.sort(rng.integers(10, 1000, n_opts)).astype(float)
        loss = np.sort(rng.uniform(0, 0.02, n_opts))[::-1]
        opts = [
            Option(2**i, float(b), float(x))
            for i, (b, x) in enumerate(zip(bits, loss, strict=True))
        ]
        opts.append(Option(FP32, 5000.0, 0.0))
        options[f"l{layer}"] = opts
    return options


def _brute_force(options, budget):
    best = None
    for combo in itertools.product(*options.values()):
        if sum(max(o.loss, 0) for o in combo) <= budget + 1e-12:
            size = sum(o.bits for o in combo)
            if best is None or size < best:
                best = size
    return best


@pytest.mark.parametrize("seed", range(8))
def test_knapsack_is_optimal_up_to_the_loss_discretisation(seed):
    rng = np.random.default_rng(seed)
    options = _random_options(rng, 4, 4)
    budget = 0.02
    cand = solve_knapsack(options, budget, units=2000)
    k_map = cand.as_dict()
    chosen = [
        next(o for o in opts if o.k == k_map.get(layer, FP32)) for layer, opts in options.items()
    ]
    assert sum(max(o.loss, 0) for o in chosen) <= budget + 1e-12  # never over budget
    size = sum(o.bits for o in chosen)
    # optimal for a slightly tighter budget (losses are rounded up to 1/2000 of the budget)
    assert size <= _brute_force(options, budget * (1 - 4 / 2000))
    assert size >= _brute_force(options, budget)


def test_zero_budget_keeps_only_lossless_choices():
    options = {"a": [Option(2, 10, 0.01), Option(4, 20, 0.0), Option(FP32, 100, 0.0)]}
    assert solve_knapsack(options, 0.0) == Candidate.of({"a": 4})


def test_ladder_is_ordered_from_small_to_large_budgets_and_distinct():
    options = _random_options(np.random.default_rng(3), 5, 5)
    cands = ladder(options, allowed_loss=0.01, alpha=1.0, scales=(0.5, 1.0, 1.0, 2.0, 4.0))
    assert len(cands) == len(set(cands))
    sizes = [
        sum(
            next(o.bits for o in options[layer] if o.k == c.as_dict().get(layer, FP32))
            for layer in options
        )
        for c in cands
    ]
    assert sizes == sorted(sizes, reverse=True)


def test_predicted_loss_and_calibration():
    options = {"a": [Option(2, 1, 0.01), Option(FP32, 9, 0.0)], "b": [Option(4, 1, -0.002)]}
    assert predicted_loss(options, Candidate.of({"a": 2, "b": 4})) == pytest.approx(0.01)
    assert predicted_loss(options, Candidate(())) == 0.0
    assert calibrate([(0.01, 0.02), (0.02, 0.04)]) == pytest.approx(2.0)
    assert calibrate([]) == 1.0
    assert calibrate([(0.01, -0.05)]) == 0.25  # floored
