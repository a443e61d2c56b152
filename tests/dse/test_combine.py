import itertools

import numpy as np
import pytest

from weightshare.dse.combine import polish_moves, predicted_damage, solve_knapsack
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
        if sum(o.damage for o in combo) <= budget + 1e-12:
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
    assert sum(o.damage for o in chosen) <= budget + 1e-12  # never over budget
    size = sum(o.bits for o in chosen)
    # optimal for a slightly tighter budget (losses are rounded up to 1/2000 of the budget)
    assert size <= _brute_force(options, budget * (1 - 4 / 2000))
    assert size >= _brute_force(options, budget)


def test_zero_budget_keeps_only_lossless_choices():
    options = {"a": [Option(2, 10, 0.01), Option(4, 20, 0.0), Option(FP32, 100, 0.0)]}
    assert solve_knapsack(options, 0.0) == Candidate.of({"a": 4})


def test_predicted_damage_sums_the_one_layer_damages():
    options = {"a": [Option(2, 1, 0.01), Option(FP32, 9, 0.0)], "b": [Option(4, 1, 0.002)]}
    assert predicted_damage(options, Candidate.of({"a": 2, "b": 4})) == pytest.approx(0.012)
    assert predicted_damage(options, Candidate.of({"b": 4})) == pytest.approx(0.002)
    with pytest.raises(ValueError, match="k=8 is not one of its options"):
        predicted_damage(options, Candidate.of({"a": 8}))


def test_polish_moves_go_one_option_smaller_best_bits_per_damage_first():
    options = {
        "a": [Option(2, 10, 0.5), Option(4, 20, 0.1), Option(FP32, 100, 0.0)],
        "b": [Option(3, 40, 0.3), Option(8, 80, 0.01), Option(FP32, 200, 0.0)],
        "c": [Option(2, 5, 0.2), Option(FP32, 50, 0.0)],
    }
    point = Candidate.of({"a": 4, "b": 8})
    # a: 4 -> 2 saves 10 bits for 0.4 (25/nat); b: 8 -> 3 saves 40 for 0.29 (138/nat);
    # c: fp32 -> 2 saves 45 for 0.2 (225/nat)
    assert polish_moves(options, point) == [
        Candidate.of({"a": 4, "b": 8, "c": 2}),
        Candidate.of({"a": 4, "b": 3}),
        Candidate.of({"a": 2, "b": 8}),
    ]
    assert polish_moves(options, point, excluded=frozenset({("c", 2), ("a", 2)})) == [
        Candidate.of({"a": 4, "b": 3})
    ]
    assert polish_moves(options, Candidate.of({"a": 2, "b": 3, "c": 2})) == []
