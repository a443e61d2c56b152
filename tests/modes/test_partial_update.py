"""``--mode partial_update`` end to end: outputs, replay from the files, one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import one_line_error, run_main

TINY = (
    "--mode", "partial_update", "--network_dataset", "lenet300_fashionmnist",
    "--initial-samples", "300", "--samples-per-round", "300", "--rounds", "2",
    "--round-epochs", "1", "--threads", "1",
)  # fmt: skip


@pytest.mark.slow
def test_run_writes_json_plot_and_files_that_replay(tmp_path):
    proc = run_main(*TINY, "--method", "dpu,rpu,fu", "--log_file", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    document = json.loads((tmp_path / "partial_update.json").read_text())
    assert document["methods"] == ["dpu", "rpu", "fu"]
    assert [(r["method"], r["round"]) for r in document["rounds"]] == [
        (m, r) for m in ("dpu", "rpu", "fu") for r in (0, 1)
    ]
    for r in document["rounds"]:
        if not r["skipped"]:
            assert (tmp_path / r["file"]).stat().st_size == r["bytes_sent"]
    assert set(document["summary"]) == {"dpu", "rpu", "fu"}
    import matplotlib.image

    image = matplotlib.image.imread(tmp_path / "partial_update.png")
    assert image.shape[0] > 300 and image.shape[1] > 1000
    proc = run_main("--mode", "partial_update", "--replay", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dpu: 2 rounds rebuilt" in proc.stdout
    update = next(tmp_path.glob("updates/dpu/round_01.wsz"), None) or next(
        tmp_path.glob("updates/dpu/*.wsz")
    )
    data = bytearray(update.read_bytes())
    data[-3] ^= 0x10
    update.write_bytes(bytes(data))
    line = one_line_error(run_main("--mode", "partial_update", "--replay", str(tmp_path)))
    assert str(update) in line and "checksum mismatch" in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--method", "dpu,sgd"), "--method must be a comma list"),
        (("--updating-ratio", "0"), "--updating-ratio must be a float in (0, 1]; got 0.0"),
        (("--lambda", "1.5"), "--lambda must be a float in [0, 1]; got 1.5"),
        (("--round-epochs", "0"), "--round-epochs must be an int >= 1; got 0"),
        (("--initial-samples", "0"), "--initial-samples must be an int in [1, 60000]; got 0"),
        ((), "needs --log_file DIR"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path, flags, message):
    log = () if not flags else ("--log_file", str(tmp_path))
    line = one_line_error(run_main(*TINY, *flags, *log))
    assert message in line


def test_replay_of_a_missing_run_is_one_line(tmp_path):
    line = one_line_error(run_main("--mode", "partial_update", "--replay", str(tmp_path)))
    assert "partial_update.json not found" in line


def test_round_lr_defaults_to_the_networks_recipe():
    # it defaulted to 5e-3, a left-over of an Adam loop, ten times below the SGD recipe's 0.05
    from weightshare.cli import build_parser

    args = build_parser().parse_args([*TINY, "--log_file", "x"])
    assert args.round_lr is None
