"""bench/bench_dpu_variants.py: its step-1 variants against the product's, and its flag checks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bench import bench_dpu_variants as dv
from tests.conftest import ROOT, one_line_error
from weightshare.networks.lenet import LeNet300
from weightshare.networks.registry import TrainRecipe
from weightshare.updating.masked_training import train_step
from weightshare.updating.methods import RoundData

NAMES = ("fc1.weight", "fc3.weight")


def _round_data(recipe: TrainRecipe) -> RoundData:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    return RoundData(x, y, recipe, 0.01, 0.5, torch.Generator().manual_seed(2))


def _contribution(pairing: str, recipe: TrainRecipe) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    data = _round_data(recipe)
    if pairing == "same":  # the product's step 1
        return train_step(LeNet300(), data.x, data.y, recipe, data.generator, track=NAMES)
    return dv.trajectory_contribution(LeNet300(), data, recipe, NAMES, pairing)


def test_decayed_without_weight_decay_is_the_products_term():
    recipe = TrainRecipe(epochs=2, batch_size=16, lr=0.01, weight_decay=0.0)
    decayed, same = _contribution("decayed", recipe), _contribution("same", recipe)
    for n in NAMES:
        assert torch.equal(decayed[n], same[n])
    with_decay = TrainRecipe(epochs=2, batch_size=16, lr=0.01, weight_decay=5e-4)
    assert not torch.equal(_contribution("decayed", with_decay)["fc3.weight"], same["fc3.weight"])


def test_next_pairs_each_step_with_the_following_gradient():
    # one step (the whole batch once): no following gradient, so nothing is counted
    one = _contribution("next", TrainRecipe(epochs=1, batch_size=64, lr=0.01))
    assert all(not one[n].any() for n in NAMES)
    # two steps: -dw_0 * g_1, which differs from the product's -dw_0 g_0 - dw_1 g_1
    two = TrainRecipe(epochs=1, batch_size=32, lr=0.01)
    assert _contribution("next", two)["fc3.weight"].any()
    assert not torch.equal(
        _contribution("next", two)["fc3.weight"], _contribution("same", two)["fc3.weight"]
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rounds", "0"], "--rounds must be an int in [1, 1000]; got 0"),
        (["--batch", "0"], "--batch must be an int >= 1; got 0"),
        (["--per-round", "-5"], "--per-round must be an int >= 0; got -5"),
        (["--iterations", "0"], "--iterations must be an int >= 1; got 0"),
        (["--ratio", "1.5"], "--ratio must be a float in (0, 1]; got 1.5"),
    ],
)
def test_bad_flags_end_in_one_line(flags, message):
    proc = subprocess.run(
        [sys.executable, "bench/bench_dpu_variants.py", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert one_line_error(proc) == f"error: {message}"
