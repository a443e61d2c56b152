"""--mode deep_compression end to end on a short schedule: the file decodes to what was scored."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import one_line_error, run_main, run_mode
from weightshare.codecs import decode_model, encode_model
from weightshare.errors import UserError
from weightshare.modes.deep_compression import load_into_state, parse_layer_bits, stored_precision
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.tensors import images_to_tensor
from weightshare.pruning.magnitude import magnitude_masks, prunable
from weightshare.pruning.quantize import share_pruned


@pytest.mark.slow
def test_pipeline_writes_a_file_that_scores_what_it_reported(tmp_path):
    out = tmp_path / "dc"
    doc = run_mode(
        "deep_compression", out, "--network_dataset", "lenet5_fashionmnist",
        "--prune-steps", "2", "--prune-schedule", "geometric", "--retrain-epochs", "0",
        "--final-epochs", "1", "--finetune-centroids", "1", "--train-images", "512",
        "--threads", "1",
    )  # fmt: skip
    assert doc["settings"]["prune_schedule"] == "geometric"
    assert doc["settings"]["final_epochs"] == 1
    data = (out / "model.wsz").read_bytes()
    assert doc["table"]["total"]["file_bytes_pqh"] == len(data)
    assert doc["table"]["total"]["ratio_pqh"] == 4 * 61706 / len(data)
    assert doc["decoded_equals_encoded"] is True
    assert doc["accuracy"]["decoded_file"] == doc["accuracy"]["shared_finetuned"]
    assert "quantization_aware" not in doc["accuracy"] and doc["settings"]["qat_epochs"] == 0
    kept = {r["layer"]: r["kept"] for r in doc["table"]["layers"]}
    assert kept["fc1.weight"] == round(0.08 * 48000) / 48000
    assert kept["conv1.weight"] == (150 - round(0.34 * 150)) / 150
    decoded = decode_model(data)
    assert {e.codec for e in decoded.manifest.tensors} == {"sparse_shared", "raw"}
    assert int((decoded.state["fc1.weight"] != 0).sum()) == round(0.08 * 48000)


@pytest.mark.slow
def test_fp16_storage_and_per_layer_bits_are_what_the_file_holds(tmp_path):
    out = tmp_path / "dc"
    proc = run_main(
        "--mode", "deep_compression", "--network_dataset", "lenet5_fashionmnist",
        "--prune-steps", "1", "--retrain-epochs", "1", "--finetune-centroids", "1",
        "--train-images", "512", "--threads", "1", "--log_file", str(out),
        "--fc-bits", "4", "--layer-bits", "fc1.weight=3,conv1.weight=2",
        "--codebook-dtype", "fp16", "--bias-dtype", "fp16", "--qat-epochs", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "deep_compression.json").read_text())
    decoded = decode_model((out / "model.wsz").read_bytes())
    assert doc["accuracy"]["decoded_file"] == doc["accuracy"]["shared_finetuned"]
    assert doc["decoded_equals_encoded"] is True
    entries = {e.name: e for e in decoded.manifest.tensors}
    assert entries["fc2.weight"].params["k"] == entries["fc3.weight"].params["k"] == 16
    assert entries["fc1.weight"].params["k"] == 8 and entries["conv1.weight"].params["k"] == 4
    assert entries["conv2.weight"].params["k"] == 32  # --conv-bits default 5
    for name, entry in entries.items():
        if entry.codec == "raw":  # every bias: 2 bytes per value
            assert entry.dtype == "float16" and entry.coded_bytes == 2 * entry.size, name
        else:
            assert entry.params["codebook_dtype"] == "fp16"
    assert doc["settings"]["layer_bits"] == {"fc1.weight": 3, "conv1.weight": 2}
    assert doc["settings"]["qat_epochs"] == 1 and doc["settings"]["qat_lr"] == 0.01
    assert list(doc["accuracy"]) == [
        "baseline", "pruned_retrained", "shared", "quantization_aware", "shared_finetuned",
        "decoded_file",
    ]  # fmt: skip


def test_stored_precision_rounds_the_model_to_the_file_bit_for_bit(small_search):
    spec = get_network("lenet5_fashionmnist")
    model = load_into(spec.build(), BASELINE_DIR / "lenet5_fashionmnist.pt").eval()
    masks = magnitude_masks(model, sparsity=0.7)
    with torch.no_grad():
        for key, w in prunable(model).items():
            w.mul_(masks[key])
    weights = {key: w.detach().numpy().copy() for key, w in prunable(model).items()}
    sparse = share_pruned(weights, dict.fromkeys(weights, 16))
    bias_before = model.fc1.bias.detach().clone()
    rounded, state = stored_precision(model, sparse, "fp16", "fp16")
    # the model now holds fp16-rounded biases and codebooks, as float32
    assert torch.equal(model.fc1.bias, bias_before.half().float())
    assert not torch.equal(model.fc1.bias, bias_before)
    for key, sp in rounded.items():
        codebook = sp.shared.codebook
        assert np.array_equal(codebook, codebook.astype(np.float16).astype(np.float32))
        assert np.array_equal(prunable(model)[key].detach().numpy(), sp.dequantize())
    assert state["fc1.bias"].dtype == np.float16
    decoded = decode_model(
        encode_model(state, rounded, network=spec.name, codebook_dtype="fp16")
    ).state
    assert all(np.array_equal(decoded[key], state[key]) for key in state)
    x = images_to_tensor(small_search.images[:200], spec.input_size)
    with torch.inference_mode():
        assert torch.equal(load_into_state(spec, decoded).eval()(x), model(x))


def test_stored_precision_fp32_changes_nothing():
    spec = get_network("lenet300_fashionmnist")
    torch.manual_seed(0)
    model = spec.build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weights = {key: w.detach().numpy().copy() for key, w in prunable(model).items()}
    sparse = share_pruned(weights, dict.fromkeys(weights, 4))
    rounded, state = stored_precision(model, sparse, "fp32", "fp32")
    for key, value in model.state_dict().items():
        expected = rounded[key].dequantize() if key in rounded else before[key].numpy()
        assert np.array_equal(value.numpy(), expected) and state[key].dtype == np.float32


def test_parse_layer_bits():
    assert parse_layer_bits("fc1.weight=3, conv1.weight=6") == {
        "fc1.weight": 3,
        "conv1.weight": 6,
    }
    assert parse_layer_bits(None) == {} and parse_layer_bits("") == {}
    with pytest.raises(UserError) as raised:
        parse_layer_bits("fc1.weight=3,conv1.weight=6, fc1.weight=4")
    assert str(raised.value) == (
        "--layer-bits names 'fc1.weight' twice; give each weight key once; "
        "got 'fc1.weight=3,conv1.weight=6, fc1.weight=4'"
    )


def test_layer_bits_keys_are_checked_before_anything_loads(tmp_path):
    # the missing checkpoint is never looked at: the unknown key is refused first
    proc = run_main(
        "--mode", "deep_compression", "--log_file", str(tmp_path / "dc"),
        "--checkpoint", str(tmp_path / "missing.pt"), "--layer-bits", "fc1.weight=3,fc9.weight=2",
    )  # fmt: skip
    assert one_line_error(proc) == (
        "error: --layer-bits names 'fc9.weight', not a weight of lenet5_fashionmnist; its "
        "weights: conv1.weight, conv2.weight, fc1.weight, fc2.weight, fc3.weight"
    )


def test_layer_bits_of_an_unpruned_layer_set_its_shared_values(tmp_path):
    # fc3 is not pruned (--sparsity names fc1 only) yet shared: its --layer-bits is used
    out = tmp_path / "dc"
    doc = run_mode(
        "deep_compression", out, "--network_dataset", "lenet300_fashionmnist",
        "--sparsity", "fc1.weight=0.5", "--layer-bits", "fc3.weight=2", "--retrain-epochs", "0",
        "--finetune-centroids", "0", "--train-images", "128", "--threads", "1",
    )  # fmt: skip
    assert {r["layer"]: r["kept"] for r in doc["table"]["layers"]} == {
        "fc1.weight": 0.5,
        "fc2.weight": 1.0,
        "fc3.weight": 1.0,
    }
    entries = {e.name: e for e in decode_model((out / "model.wsz").read_bytes()).manifest.tensors}
    assert entries["fc3.weight"].params["k"] == 4
    assert entries["fc1.weight"].params["k"] == entries["fc2.weight"].params["k"] == 32


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--layer-bits", "fc1.weight"], "--layer-bits must be KEY=B,KEY=B"),
        (["--layer-bits", "fc1.weight=x"], "--layer-bits must be KEY=B,KEY=B"),
        (["--layer-bits", "fc1.weight=17"], "--layer-bits fc1.weight must be"),
        (["--layer-bits", "fc1.weight=3,fc1.weight=4"], "--layer-bits names 'fc1.weight' twice"),
        (["--coder", "fixed"], "--coder must be an entropy coder"),
        (["--fc-bits", "0"], "--fc-bits must be"),
        (["--qat-epochs", "-1"], "--qat-epochs must be"),
        (["--qat-lr", "0"], "--qat-lr must be"),
        (["--network_dataset", "resnet20_fashionmnist"], "--sparsity is needed for"),
        (["--sparsity", ""], "--sparsity must be a float in [0, 1) or KEY=F,KEY=F"),
        (
            ["--layer-bits", "fc9.weight=3"],
            "--layer-bits names 'fc9.weight', not a weight of lenet5_fashionmnist",
        ),
        (
            ["--sparsity", "conv1.weight=0.3,conv3.weight=0.5"],
            "--sparsity names 'conv3.weight', not a weight of lenet5_fashionmnist; its "
            "weights: conv1.weight, conv2.weight, fc1.weight, fc2.weight, fc3.weight",
        ),
    ],
)
def test_bad_flags_end_in_one_error_line(tmp_path, flags, message):
    proc = run_main("--mode", "deep_compression", "--log_file", str(tmp_path), *flags)
    assert message in one_line_error(proc)
