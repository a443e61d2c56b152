"""--seed of --mode prune and --mode deep_compression: the default reproduces the runs recorded
before the flag (pinned bytes and accuracies), another seed gives another model, the same seed
the same bytes."""

from __future__ import annotations

import hashlib

import pytest
import torch

from tests.conftest import one_line_error, run_main, run_mode

# A short magnitude schedule on LeNet-300-100 (512 images, 2 rounds, 1 epoch each).
SHORT = (
    "--network_dataset", "lenet300_fashionmnist", "--sparsity", "fc1.weight=0.9,fc2.weight=0.8",
    "--prune-steps", "2", "--retrain-epochs", "1", "--train-images", "512", "--threads", "1",
)  # fmt: skip
# Written by main at 715dce0 (before --seed) with SHORT + --finetune-centroids 1.
PINNED_DC_SHA256 = "b7356f63da5c86619a31596f4837e4259bb757a8c0e68e30b1fbb60177114a22"
PINNED_PRUNE_ACCURACY = {"search": 0.8262, "holdout": 0.8126}  # 4131 / 5000, 4063 / 5000


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tensor_bytes(path) -> dict[str, bytes]:
    state = torch.load(path, weights_only=True)
    return {key: value.numpy().tobytes() for key, value in state.items()}


@pytest.mark.slow
def test_deep_compression_seed(tmp_path):
    dc = ("deep_compression", *SHORT, "--finetune-centroids", "1")
    default = run_mode(dc[0], tmp_path / "d", *dc[1:])
    assert default["settings"]["seed"] == 0
    assert _sha256(tmp_path / "d" / "model.wsz") == PINNED_DC_SHA256
    one = run_mode(dc[0], tmp_path / "s1", *dc[1:], "--seed", "1")
    again = run_mode(dc[0], tmp_path / "s1b", *dc[1:], "--seed", "1")
    assert one["settings"]["seed"] == 1
    assert (tmp_path / "s1" / "model.wsz").read_bytes() == (
        tmp_path / "s1b" / "model.wsz"
    ).read_bytes()
    assert one["accuracy"] == again["accuracy"]
    assert _sha256(tmp_path / "s1" / "model.wsz") != PINNED_DC_SHA256
    assert one["accuracy"]["decoded_file"] != default["accuracy"]["decoded_file"]


@pytest.mark.slow
def test_prune_seed(tmp_path):
    default = run_mode("prune", tmp_path / "d", *SHORT)
    assert default["accuracy_after"] == PINNED_PRUNE_ACCURACY
    one = run_mode("prune", tmp_path / "s1", *SHORT, "--seed", "1")
    again = run_mode("prune", tmp_path / "s1b", *SHORT, "--seed", "1")
    assert one["settings"]["seed"] == 1 and default["settings"]["seed"] == 0
    assert one["accuracy_after"] == again["accuracy_after"]
    assert _tensor_bytes(tmp_path / "s1" / "pruned.pt") == _tensor_bytes(
        tmp_path / "s1b" / "pruned.pt"
    )
    assert _tensor_bytes(tmp_path / "s1" / "pruned.pt") != _tensor_bytes(
        tmp_path / "d" / "pruned.pt"
    )
    assert one["accuracy_after"] != default["accuracy_after"]


@pytest.mark.parametrize("mode", ["prune", "deep_compression"])
def test_negative_seed_is_one_line(tmp_path, mode):
    proc = run_main(
        "--mode", mode, "--network_dataset", "lenet300_fashionmnist", "--seed", "-1",
        "--log_file", str(tmp_path / "o"),
    )  # fmt: skip
    assert one_line_error(proc) == "error: --seed must be an int >= 0; got -1"
