import json

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from weightshare.networks import get_network
from weightshare.networks.datasets import Split, load_split
from weightshare.networks.registry import TrainRecipe
from weightshare.networks.training import augment_batch, checkpoint_name, train


def test_checkpoint_names_follow_epoch_lr():
    assert checkpoint_name(21, 0.01) == "21_0.01.pt"
    assert checkpoint_name(3, 0.1) == "3_0.1.pt"


def test_augment_batch_translates_and_flips_within_bounds():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    gen = torch.Generator().manual_seed(0)
    out = augment_batch(x, 0, gen)  # no shift: each image is itself or its mirror
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    a = augment_batch(x, 2, torch.Generator().manual_seed(1))
    b = augment_batch(x, 2, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape


def _tiny(split: Split, n: int) -> Split:
    return Split(split.name, split.images[:n], split.labels[:n])


def test_training_is_seeded_and_writes_loadable_checkpoints(tmp_path, small_search):
    spec = get_network("lenet300_fashionmnist")
    train_split = _tiny(load_split("train"), 2000)
    recipe = TrainRecipe(epochs=2, lr=0.05)
    logs_a = train(spec, train_split, small_search, tmp_path / "a", recipe=recipe, progress=False)
    logs_b = train(spec, train_split, small_search, tmp_path / "b", recipe=recipe, progress=False)
    assert [p.name for p in sorted((tmp_path / "a").iterdir())] == ["1_0.05.pt", "2_0.05.pt"]
    a = torch.load(logs_a[-1].checkpoint, weights_only=True)
    b = torch.load(logs_b[-1].checkpoint, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert logs_a[-1].monitor_accuracy > 0.5  # 2 epochs on 2k images already learn something


@pytest.mark.slow
def test_train_mode_reproduces_the_committed_lenet300_accuracy(
    tmp_path, search_split, holdout_split
):
    """The documented recipe, run again, lands within 0.3 points of the committed baseline."""
    recorded = json.loads((ROOT / "baselines" / "baselines.json").read_text())[
        "lenet300_fashionmnist"
    ]
    spec = get_network("lenet300_fashionmnist")
    logs = train(spec, load_split("train"), search_split, tmp_path, progress=False)
    assert abs(logs[-1].monitor_accuracy - recorded["accuracy_search"]) <= 0.003
    from weightshare.backends.pytorch import PyTorchBackend
    from weightshare.networks.checkpoints import load_into

    model = load_into(spec.build(), logs[-1].checkpoint)
    acc = PyTorchBackend(model, spec.input_size).evaluate(holdout_split).top1
    assert abs(acc - recorded["accuracy_holdout"]) <= 0.003
    assert np.isfinite(logs[-1].train_loss)
