"""The command line as a user meets it: real subprocesses, real data, real baselines."""

import json

import pytest

from tests.conftest import one_line_error, run_main
from weightshare.cli import build_parser
from weightshare.networks import NETWORKS


def test_help_lists_the_networks_and_modes():
    text = build_parser().format_help()
    for name in NETWORKS:
        assert name in text
    assert "--dataset_scale" in text and "--k-per-layer" in text and "evaluate" in text


def test_unknown_network_lists_the_known_ones():
    line = one_line_error(run_main("--network_dataset", "vgg_cifar", "--k", "4"))
    assert "unknown --network_dataset 'vgg_cifar'" in line and "lenet5_fashionmnist" in line


def test_missing_data_names_apt_and_data_dir(tmp_path):
    line = one_line_error(run_main("--mode", "evaluate", "--data-dir", str(tmp_path)))
    assert "apt-get install -y dataset-fashion-mnist" in line and "--data-dir" in line


@pytest.mark.parametrize("k", ["0", "70000", "-3"])
def test_k_out_of_range(k):
    line = one_line_error(run_main("--mode", "evaluate", "--k", k))
    assert f"--k must be an int in [1, 65536]; got {int(k)}" in line


def test_k_not_an_int_is_one_line():
    one_line_error(run_main("--mode", "evaluate", "--k", "many"))


def test_malformed_k_per_layer_json(tmp_path):
    bad = tmp_path / "k.json"
    bad.write_text('{"conv1": 4,')
    assert "is not valid JSON" in one_line_error(
        run_main("--mode", "evaluate", "--k-per-layer", str(bad))
    )
    bad.write_text('{"conv1": 4.5}')
    assert "k of layer 'conv1'" in one_line_error(
        run_main("--mode", "evaluate", "--k-per-layer", str(bad))
    )
    bad.write_text('{"conv9": 4}')
    assert "unknown layer 'conv9'" in one_line_error(
        run_main("--mode", "evaluate", "--k-per-layer", str(bad))
    )
    bad.write_text("[4, 4]")
    assert "JSON object" in one_line_error(
        run_main("--mode", "evaluate", "--k-per-layer", str(bad))
    )


def test_checkpoint_that_is_not_a_state_dict(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    line = one_line_error(run_main("--mode", "evaluate", "--checkpoint", str(bad), "--k", "4"))
    assert "is not a loadable state dict" in line
    line = one_line_error(run_main("--mode", "exploration", "--checkpoint", str(bad)))
    assert "is not a loadable state dict" in line


def test_bad_dataset_scale_is_one_line():
    assert "--dataset_scale must be a float in (0, 1]" in one_line_error(
        run_main("--dataset_scale", "2", "--k", "4")
    )


@pytest.mark.slow
def test_evaluate_lenet5_k256_keeps_accuracy_and_k2_loses_it(tmp_path):
    results = {}
    for k in (256, 2):
        out = tmp_path / f"k{k}"
        proc = run_main(
            "--mode",
            "evaluate",
            "--network_dataset",
            "lenet5_fashionmnist",
            "--k",
            str(k),
            "--log_file",
            str(out),
        )
        assert proc.returncode == 0, proc.stderr
        assert "conv1" in proc.stdout and "compression ratio" in proc.stdout
        results[k] = json.loads((out / "evaluation.json").read_text())
    r256, r2 = results[256], results[2]
    for key in (
        "network",
        "baseline",
        "candidate",
        "compression_ratio_fixed",
        "compression_ratio_model",
        "layers",
    ):
        assert key in r256
    assert r256["baseline"] == r2["baseline"]  # same images, same pristine model
    loss256 = r256["baseline"]["accuracy_search"] - r256["candidate"]["accuracy_search"]
    loss2 = r2["baseline"]["accuracy_search"] - r2["candidate"]["accuracy_search"]
    assert abs(loss256) <= 0.003
    assert loss2 >= 0.02 and loss2 > loss256 + 0.02
    assert [row["name"] for row in r256["layers"]] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    row = r256["layers"][2]
    assert (
        row["n_weights"] == 48000
        and row["k"] == 256
        and row["bits"] == pytest.approx((8 * 48000 + 32 * 256) / 48000)
    )
    # LeNet-5 weights 61,470: at k=2 each index is 1 bit, the 5 codebooks add 5*2*32 bits.
    assert r2["compression_ratio_fixed"] == pytest.approx(32 * 61470 / (61470 + 5 * 2 * 32))
