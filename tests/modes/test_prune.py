"""--mode prune end to end: outputs other modes accept; bad flags end in one error line."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import one_line_error, run_main, run_mode


@pytest.mark.slow
def test_fpgm_checkpoint_is_smaller_and_other_modes_load_it(tmp_path):
    out = tmp_path / "p"
    doc = run_mode(
        "prune", out, "--method", "fpgm", "--network_dataset", "lenet5_fashionmnist",
        "--prune-rate", "0.5", "--retrain-epochs", "1", "--train-images", "512", "--threads", "1",
    )  # fmt: skip
    assert doc["channels"] == {"conv1": 3, "conv2": 8}
    assert doc["accuracy_reloaded"] == doc["accuracy_after"]
    state = torch.load(out / "pruned.pt", weights_only=True)
    assert state["conv2.weight"].shape == (8, 3, 5, 5) and state["fc1.weight"].shape == (120, 200)
    assert doc["parameters_after"] == sum(v.numel() for v in state.values())
    proc = run_main(
        "--mode", "evaluate", "--network_dataset", "lenet5_fashionmnist", "--checkpoint",
        str(out / "pruned.pt"), "--k", "256", "--dataset_scale", "0.2", "--threads", "1",
        "--log_file", str(tmp_path / "e"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_fpgm_retrains_its_one_round_for_final_epochs(tmp_path):
    doc = run_mode(
        "prune", tmp_path / "p", "--method", "fpgm", "--network_dataset", "lenet5_fashionmnist",
        "--prune-rate", "0.5", "--retrain-epochs", "3", "--final-epochs", "0",
        "--train-images", "512", "--threads", "1",
    )  # fmt: skip
    assert doc["accuracy_after"] == doc["accuracy_pruned"]  # no epoch: the pruned weights
    assert doc["accuracy_after"] != doc["accuracy_before"]


@pytest.mark.slow
def test_magnitude_checkpoint_has_the_requested_zeros_and_no_masks(tmp_path):
    out = tmp_path / "m"
    doc = run_mode(
        "prune", out, "--network_dataset", "lenet300_fashionmnist",
        "--sparsity", "fc1.weight=0.95,fc2.weight=0.9", "--prune-steps", "2",
        "--retrain-epochs", "1", "--train-images", "512", "--threads", "1",
    )  # fmt: skip
    state = torch.load(out / "pruned.pt", weights_only=True)
    assert set(state) == {f"fc{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
    assert int((state["fc1.weight"] == 0).sum()) == round(0.95 * 235200)
    assert int((state["fc2.weight"] == 0).sum()) == 0.9 * 30000
    assert doc["weights_kept"] == 235200 - round(0.95 * 235200) + 3000 + 1000
    assert len(doc["rounds"]) == 2
    assert doc["accuracy_reloaded"] == doc["accuracy_after"]


@pytest.mark.slow
def test_geometric_rounds_and_final_epochs(tmp_path):
    doc = run_mode(
        "prune", tmp_path / "g", "--network_dataset", "lenet300_fashionmnist",
        "--sparsity", "fc1.weight=0.96", "--prune-steps", "2", "--prune-schedule", "geometric",
        "--retrain-epochs", "1", "--final-epochs", "0", "--train-images", "512", "--threads", "1",
    )  # fmt: skip
    first, last = doc["rounds"]
    # kept 0.04 ** (1/2) = 0.2, then 0.04 (float32 means: 1e-7 is far below 1 / 235200)
    assert first["kept"]["fc1.weight"] == pytest.approx(0.2, abs=1e-7)
    assert last["kept"] == pytest.approx(
        {"fc1.weight": 0.04, "fc2.weight": 1.0, "fc3.weight": 1.0}, abs=1e-7
    )
    assert first["accuracy_retrained"] != first["accuracy_pruned"]  # one epoch in round 1
    assert last["accuracy_retrained"] == last["accuracy_pruned"]  # --final-epochs 0
    assert doc["settings"]["prune_schedule"] == "geometric"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--method", "bogus"], "--method must be one of"),
        (["--sparsity", "fc1=x"], "--sparsity must be a float in [0, 1) or KEY=F"),
        (["--sparsity", "1.5"], "--sparsity values must lie in [0, 1); got 1.5"),
        (
            ["--sparsity", "fc1.weight=0.5,fc1.weight=0.9"],
            "--sparsity names 'fc1.weight' twice; give each weight key once; "
            "got 'fc1.weight=0.5,fc1.weight=0.9'",
        ),
        (["--method", "fpgm", "--prune-rate", "1"], "--prune-rate must be a float in [0, 1)"),
        (["--prune-steps", "0"], "--prune-steps must be"),
        (
            ["--retrain-weight-decay", "-0.1"],
            "--retrain-weight-decay must be a float in [0, 1]; got -0.1",
        ),
        (["--distill", "1.5"], "--distill must be a float in [0, 1]; got 1.5"),
        (["--final-epochs", "-1"], "--final-epochs must be"),
        (["--prune-schedule", "cubic"], "--prune-schedule: invalid choice: 'cubic'"),
        (
            ["--prune-schedule", "geometric", "--quality", "1"],
            "--prune-schedule geometric shapes the rounds of --method magnitude --sparsity; "
            "got --quality",
        ),
        (
            ["--prune-schedule", "geometric", "--method", "fpgm"],
            "--prune-schedule geometric shapes the rounds of --method magnitude --sparsity; "
            "got --method fpgm",
        ),
        (["--distill-temperature", "0"], "--distill-temperature must be a float in (0, 100]"),
        # an empty value is refused, not replaced by the default
        (["--method", ""], "--method must be one of ('magnitude', 'fpgm'); got ''"),
        (
            ["--sparsity", ""],
            "--sparsity must be a float in [0, 1) or KEY=F,KEY=F (weight keys); got ''",
        ),
    ],
)
def test_bad_flags_end_in_one_error_line(tmp_path, flags, message):
    proc = run_main(
        "--mode", "prune", "--network_dataset", "lenet300_fashionmnist",
        "--log_file", str(tmp_path), *flags,
    )  # fmt: skip
    assert message in one_line_error(proc)


def test_sparsity_keys_are_checked_before_anything_loads(tmp_path):
    # the missing checkpoint is never looked at: the key that names no weight is refused first
    proc = run_main(
        "--mode", "prune", "--network_dataset", "lenet300_fashionmnist",
        "--checkpoint", str(tmp_path / "missing.pt"), "--sparsity", "fc1.weight=0.5,fc4=0.9",
        "--log_file", str(tmp_path / "p"),
    )  # fmt: skip
    assert one_line_error(proc) == (
        "error: --sparsity names 'fc4', not a weight of lenet300_fashionmnist; its weights: "
        "fc1.weight, fc2.weight, fc3.weight"
    )


def test_fpgm_on_a_network_without_prunable_chains_is_refused(tmp_path):
    proc = run_main(
        "--mode", "prune", "--method", "fpgm", "--network_dataset", "lenet300_fashionmnist",
        "--log_file", str(tmp_path),
    )  # fmt: skip
    assert "--method fpgm supports --network_dataset" in one_line_error(proc)
