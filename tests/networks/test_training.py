import json

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.datasets import Split, load_split
from weightshare.networks.registry import TrainRecipe
from weightshare.networks.training import augment_batch, checkpoint_name, fit, train


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


# How far a retraining may land from the committed record. Training is chaotic: a one-ulp
# difference early on (another thread count, another CPU whose kernels round differently) ends
# like a run with another seed. Measured with the committed recipe (docs/benchmarks.md,
# "Training reproducibility"): over 7 trainings (seeds 0-4, 1 and 2 threads, AVX-512 and AVX2
# kernels) the final search accuracy has a standard deviation of 0.0017 (holdout 0.0010); the
# difference of two runs then has sd 0.0017 * sqrt(2) = 0.0024, and 4 of those, rounded up, is
# 0.01. The largest distance seen from the record: 0.0042 (search), 0.0024 (holdout); the old
# 0.003 was inside the noise.
RECORD_TOLERANCE = 0.01


@pytest.mark.slow
def test_train_mode_reproduces_the_committed_lenet300_accuracy(
    tmp_path, search_split, holdout_split
):
    """The documented recipe run twice with 2 threads gives the same weights bit for bit, and
    lands within RECORD_TOLERANCE of the committed baseline's search and holdout accuracy.

    About 35 s on 2 idle cores (two 20-epoch trainings); 240 s on 2 cores shared with a dozen
    other processes."""
    recorded = json.loads((ROOT / "baselines" / "baselines.json").read_text())[
        "lenet300_fashionmnist"
    ]
    assert recorded["command"].endswith("lenet300_fashionmnist")  # trained with --threads 2
    spec = get_network("lenet300_fashionmnist")
    train_split = load_split("train")
    runs = [
        train(spec, train_split, search_split, tmp_path / run, threads=2, progress=False)
        for run in ("a", "b")
    ]
    a, b = (torch.load(logs[-1].checkpoint, weights_only=True) for logs in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [log.train_loss for log in runs[0]] == [log.train_loss for log in runs[1]]
    assert not torch.are_deterministic_algorithms_enabled()  # train() puts the flag back
    logs = runs[0]
    assert abs(logs[-1].monitor_accuracy - recorded["accuracy_search"]) <= RECORD_TOLERANCE
    from weightshare.backends.pytorch import PyTorchBackend
    from weightshare.networks.checkpoints import load_into

    model = load_into(spec.build(), logs[-1].checkpoint)
    acc = PyTorchBackend(model, spec.input_size).evaluate(holdout_split).top1
    assert abs(acc - recorded["accuracy_holdout"]) <= RECORD_TOLERANCE
    assert np.isfinite(logs[-1].train_loss)


def test_a_diverging_fit_stops_at_the_first_non_finite_loss():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    before = model.weight.detach().clone()
    x, y = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    calls = []

    def loss(logits, _images, labels):
        calls.append(1)
        ce = torch.nn.functional.cross_entropy(logits, labels)
        return ce if len(calls) < 3 else ce * float("inf")

    recipe = TrainRecipe(epochs=2, lr=0.1, batch_size=4)
    with pytest.raises(UserError, match=r"^fit: the training loss became inf at epoch 2, step 1 "):
        fit(model, x, y, recipe, torch.Generator().manual_seed(0), loss=loss, desc="fit")
    assert len(calls) == 3  # stopped at once
    assert not torch.equal(model.weight, before)  # the two finite steps were taken
    assert torch.isfinite(model.weight).all()  # the diverged step was not
