"""Output paths are checked before any work: a file where a directory goes, a directory where a
file goes, a file among the parents; one ``error:`` line, exit 2, nothing computed."""

import json

import pytest
import torch

from tests.conftest import one_line_error, run_main

QUIET = {"TQDM_DISABLE": "1"}


@pytest.fixture
def blocker(tmp_path):
    """A plain file where a directory is expected."""
    path = tmp_path / "file"
    path.write_text("not a directory")
    return path


def _refused(*args) -> str:
    proc = run_main(*args, env=QUIET)
    line = one_line_error(proc)
    assert proc.stdout == ""  # refused before any work: nothing evaluated, nothing printed
    return line


def _lenet5_results(directory):
    """A results.json of LeNet-5 (the committed baseline) choosing k = 4 for fc3."""
    directory.mkdir()
    doc = {
        "network": "lenet5_fashionmnist",
        "status": "ok",
        "settings": {},
        "best": {"trial": 0, "k_per_layer": {"fc3": 4}},
        "pareto": [],
    }
    (directory / "results.json").write_text(json.dumps(doc))
    return directory


def test_evaluate_log_file_that_is_a_file(blocker):
    line = _refused("--mode", "evaluate", "--dataset_scale", "0.05", "--log_file", str(blocker))
    assert line == (
        f"error: --log_file must be a directory (created if missing); got {blocker}, "
        "which is a file"
    )


def test_evaluate_log_file_below_a_file(blocker):
    sub = blocker / "sub"
    line = _refused("--mode", "evaluate", "--dataset_scale", "0.05", "--log_file", str(sub))
    assert line == (
        f"error: --log_file must be a directory (created if missing); got {sub}, "
        f"but {blocker} is a file"
    )


def test_train_log_file_that_is_a_file(blocker, tmp_path):
    line = _refused(
        "--mode", "train", "--epochs", "1", "--cache-dir", str(tmp_path / "cache"),
        "--log_file", str(blocker),
    )  # fmt: skip
    assert line.startswith("error: --log_file must be a directory (created if missing)")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("mode", ["prune", "deep_compression", "profile", "partial_update"])
def test_log_file_below_a_file_before_any_training(blocker, mode):
    sub = blocker / "sub"
    line = _refused(
        "--mode", mode, "--network_dataset", "lenet300_fashionmnist", "--log_file", str(sub)
    )
    assert line == (
        f"error: --log_file must be a directory (created if missing); got {sub}, "
        f"but {blocker} is a file"
    )


def test_encode_out_that_is_a_directory(tmp_path):
    run = _lenet5_results(tmp_path / "run")
    target = tmp_path / "models"
    target.mkdir()
    line = _refused("--mode", "encode", "--log_file", str(run), "--out", str(target))
    assert line == f"error: --out must be a file path; got {target}, which is a directory"


def test_encode_out_elsewhere_writes_encoding_json_beside_it(tmp_path):
    run = _lenet5_results(tmp_path / "run")
    out = tmp_path / "elsewhere" / "m.wsz"
    proc = run_main("--mode", "encode", "--log_file", str(run), "--out", str(out), env=QUIET)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out.parent / "encoding.json").read_text())
    assert report["file"] == str(out) and report["k_per_layer"] == {"fc3": 4}
    assert report["file_bytes"] == out.stat().st_size
    assert sorted(p.name for p in run.iterdir()) == ["results.json"]  # the run is only read
    assert sorted(p.name for p in out.parent.iterdir()) == ["encoding.json", "m.wsz"]


def test_decode_out_that_is_a_directory(tmp_path):
    target = tmp_path / "model.pt"
    target.mkdir()
    line = _refused("--mode", "decode", str(tmp_path / "m.wsz"), "--out", str(target))
    assert line == f"error: --out must be a file path; got {target}, which is a directory"


@pytest.fixture
def pair(tmp_path):
    """Two small state dicts (checkpoints A and B)."""
    torch.manual_seed(0)
    a = {"fc.weight": torch.randn(16, 8), "fc.bias": torch.randn(16)}
    b = {k: v + 0.01 * torch.randn_like(v) for k, v in a.items()}
    paths = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(a, paths[0])
    torch.save(b, paths[1])
    return paths


def test_residual_out_that_is_a_directory(pair, tmp_path):
    target = tmp_path / "r.wsz"
    target.mkdir()
    line = _refused(
        "--mode", "residual", "--pre-epoch", str(pair[0]), "--cur-epoch", str(pair[1]),
        "--method", "ResEntropy", "--eval-accuracy", "none", "--out", str(target),
    )  # fmt: skip
    assert line == f"error: --out must be a file path; got {target}, which is a directory"


def test_residual_decode_out_that_is_a_directory(pair, tmp_path):
    target = tmp_path / "decoded.pt"
    target.mkdir()
    line = _refused(
        "--mode", "residual_decode", str(tmp_path / "r.wsz"), "--pre-epoch", str(pair[0]),
        "--out", str(target),
    )  # fmt: skip
    assert line == f"error: --out must be a file path; got {target}, which is a directory"
