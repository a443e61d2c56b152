"""--mode profile: dense vs FPGM-pruned LeNet-5 counts in profile.json."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import one_line_error, run_main
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.lenet import LeNet5
from weightshare.networks.shrink import write_architecture
from weightshare.pruning.fpgm import fpgm_prune


@pytest.mark.slow
def test_structurally_pruned_macs_and_params(tmp_path):
    model, _ = fpgm_prune(
        load_into(LeNet5(), BASELINE_DIR / "lenet5_fashionmnist.pt"), "lenet5_fashionmnist", 0.5
    )
    path = tmp_path / "pruned.pt"
    torch.save(model.state_dict(), path)
    write_architecture(path, "lenet5_fashionmnist", {"conv1": 3, "conv2": 8})
    proc = run_main(
        "--mode", "profile", "--network_dataset", "lenet5_fashionmnist", "--checkpoint",
        str(path), "--repeats", "2", "--threads", "1", "--log_file", str(tmp_path / "p"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert doc["dense"]["total"]["macs"] == 416520
    assert doc["pruned"]["total"]["macs"] == 3 * 784 * 25 + 8 * 100 * 75 + 200 * 120 + 10920
    assert doc["pruned"]["total"]["params"] == 35820
    assert "logical cores" in doc["machine"]


def test_zoo_network_is_refused():
    proc = run_main("--mode", "profile", "--network_dataset", "mobilenetv2_imagenet_pytorch")
    assert "--mode profile supports" in one_line_error(proc)
