"""--mode residual / residual_decode / residual_eval on checkpoints trained here (LeNet-300-100)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, run_main
from weightshare.cli import main
from weightshare.networks import get_network

NETWORK = "lenet300_fashionmnist"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Three real epochs (SGD with momentum) of LeNet-300-100 on 2,000 training images."""
    from weightshare.networks.datasets import Split, load_split
    from weightshare.networks.registry import TrainRecipe
    from weightshare.networks.training import train

    train_split, monitor = load_split("train"), load_split("search")
    small = Split("train@2k", train_split.images[:2000], train_split.labels[:2000])
    mon = Split("search@200", monitor.images[:200], monitor.labels[:200])
    out = tmp_path_factory.mktemp("ckpt")
    recipe = TrainRecipe(epochs=3, batch_size=128, lr=0.05)
    train(get_network(NETWORK), small, mon, out, recipe=recipe, threads=1, progress=False)
    return out


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _args(checkpoints, *extra):
    return ["--network_dataset", NETWORK, "--path-pt", str(checkpoints), *extra]


def test_pair_encode_then_decode_is_bit_exact(checkpoints, tmp_path, capsys):
    out = tmp_path / "r.wsz"
    rc = main(
        _args(
            checkpoints,
            "--mode",
            "residual",
            "--pre-epoch",
            "2",
            "--cur-epoch",
            "3",
            "--method",
            "ResEntropy",
            "--out",
            str(out),
            "--learning-rate",
            "0.05",
            "--eval-accuracy",
            "none",
            "--log_file",
            str(tmp_path),
        )
    )
    assert rc == 0 and out.is_file()
    report = json.loads((tmp_path / "residual.json").read_text())
    assert report["exact"] and report["saving"] > 0.1 and report["file_bytes"] == out.stat().st_size
    rebuilt = tmp_path / "3.pt"
    assert (
        main(
            _args(
                checkpoints,
                "--mode",
                "residual_decode",
                "--pre-epoch",
                "2",
                str(out),
                "--out",
                str(rebuilt),
            )
        )
        == 0
    )
    original, decoded = _state(checkpoints / "3_0.05.pt"), _state(rebuilt)
    assert list(original) == list(decoded)
    for name, tensor in original.items():
        assert tensor.dtype == decoded[name].dtype
        assert tensor.numpy().tobytes() == decoded[name].numpy().tobytes()


def test_lossy_pair_with_paths_keeps_accuracy(checkpoints, tmp_path):
    out = tmp_path / "q.wsz"
    rc = main(
        [
            "--network_dataset",
            NETWORK,
            "--mode",
            "residual",
            "--pre-epoch",
            str(checkpoints / "1_0.05.pt"),
            "--cur-epoch",
            str(checkpoints / "3_0.05.pt"),
            "--method",
            "ResEntropy16bits",
            "--out",
            str(out),
            "--log_file",
            str(tmp_path),
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "residual.json").read_text())
    assert report["max_abs_err"] <= 2.0**-16 and report["saving"] > 0.6
    assert abs(report["top1"] - report["top1_original"]) <= 0.001
    assert abs(report["top5"] - report["top5_original"]) <= 0.001


def test_sequence_closed_loop(checkpoints, tmp_path):
    rc = main(
        _args(
            checkpoints,
            "--mode",
            "residual_eval",
            "--epoch-first",
            "1",
            "--epoch-last",
            "3",
            "--epoch-interval",
            "1",
            "--method",
            "ResEntropy,ResEntropy16bits,Float16",
            "--eval-accuracy",
            "last",
            "--log_file",
            str(tmp_path),
        )
    )
    assert rc == 0
    doc = json.loads((tmp_path / "residual_eval.json").read_text())
    assert doc["closed_loop"] and doc["epochs"] == [1, 2, 3]
    steps = doc["steps"]
    assert [s["method"] for s in steps] == ["ResEntropy"] * 2 + ["ResEntropy16bits"] * 2 + [
        "Float16"
    ] * 2
    summary = doc["summary"]
    assert summary["ResEntropy"]["all_exact"]
    assert summary["ResEntropy16bits"]["max_abs_err"] <= 2.0**-16
    assert summary["ResEntropy16bits"]["mean_saving"] > summary["Float16"]["mean_saving"]
    last = [s for s in steps if s["method"] == "ResEntropy16bits"][-1]
    assert last["top1"] is not None and abs(last["top1"] - last["top1_original"]) <= 0.001
    assert steps[0]["top1"] is None  # --eval-accuracy last


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_clear_errors(checkpoints, tmp_path, capsys):
    lenet5 = ROOT / "baselines" / "lenet5_fashionmnist.pt"
    base = [
        "--network_dataset",
        NETWORK,
        "--mode",
        "residual",
        "--out",
        str(tmp_path / "x.wsz"),
        "--eval-accuracy",
        "none",
        "--method",
        "ResEntropy",
    ]
    err = _error(
        capsys, [*base, "--pre-epoch", str(lenet5), "--cur-epoch", str(checkpoints / "2_0.05.pt")]
    )
    assert "different tensors" in err
    err = _error(
        capsys, [*base, "--path-pt", str(checkpoints), "--pre-epoch", "7", "--cur-epoch", "2"]
    )
    assert "epochs at lr 0.05: 1-3" in err
    err = _error(capsys, [*base, "--pre-epoch", "nope.pt", "--cur-epoch", "2"])
    assert "no such file" in err
    err = _error(
        capsys,
        [
            *base[:-2],
            "--method",
            "Gzip",
            "--pre-epoch",
            "1",
            "--cur-epoch",
            "2",
            "--path-pt",
            str(checkpoints),
        ],
    )
    assert "--method" in err
    # a wrong reference, and a file that is not a residual file
    out = tmp_path / "ok.wsz"
    assert (
        main(
            _args(
                checkpoints,
                "--mode",
                "residual",
                "--pre-epoch",
                "1",
                "--cur-epoch",
                "2",
                "--method",
                "ResEntropy16bits",
                "--out",
                str(out),
                "--eval-accuracy",
                "none",
            )
        )
        == 0
    )
    err = _error(
        capsys,
        _args(
            checkpoints,
            "--mode",
            "residual_decode",
            "--pre-epoch",
            "2",
            str(out),
            "--out",
            str(tmp_path / "y.pt"),
        ),
    )
    assert "not the one this file was encoded against" in err
    junk = tmp_path / "junk.wsz"
    junk.write_bytes(b"\x89WSZ\r\n\x1a\n" + bytes(40))
    err = _error(capsys, ["--mode", "residual_decode", str(junk), "--out", str(tmp_path / "y.pt")])
    assert "junk.wsz" in err


def test_cli_exit_code_and_help():
    proc = run_main(
        "--mode", "residual_eval", "--epoch-first", "3", "--epoch-last", "3", timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "at least two" in proc.stderr
    help_text = run_main("--help", timeout=120).stdout
    for flag in ("--pre-epoch", "--cur-epoch", "--epoch-interval", "--path-pt", "--step-exp"):
        assert flag in help_text


def test_float16_file_decodes_without_reference(checkpoints, tmp_path):
    out = tmp_path / "f.wsz"
    assert (
        main(
            _args(
                checkpoints,
                "--mode",
                "residual",
                "--pre-epoch",
                "1",
                "--cur-epoch",
                "2",
                "--method",
                "Float16",
                "--out",
                str(out),
                "--eval-accuracy",
                "none",
            )
        )
        == 0
    )
    rebuilt = tmp_path / "f.pt"
    assert main(["--mode", "residual_decode", str(out), "--out", str(rebuilt)]) == 0
    original, decoded = _state(checkpoints / "2_0.05.pt"), _state(rebuilt)
    for name, tensor in original.items():
        np.testing.assert_allclose(decoded[name].numpy(), tensor.numpy(), rtol=1e-3, atol=1e-7)
