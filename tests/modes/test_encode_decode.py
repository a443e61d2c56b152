"""--mode encode / --mode decode: the decoded model predicts exactly like the evaluated one.

The "evaluated candidate" is rebuilt the way the exploration and ``--mode evaluate`` build it:
the checkpoint loaded into a :class:`PyTorchBackend`, a :class:`ClusterCache` with the run's
granularity, init and seed, and ``set_weights(dequantize())``. Its logits on search images
must equal, bit for bit, those of a fresh network holding the decoded state dict.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_main
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.codecs import CODER_NAMES, decode_model, round_codebook
from weightshare.dse.clustering import ClusterCache
from weightshare.errors import UserError
from weightshare.modes import decode, encode
from weightshare.modes.encode import EncodeConfig, read_selection
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.datasets import Split

N_IMAGES = 300


@pytest.fixture(scope="module")
def images(search_split) -> Split:
    return Split("search@300", search_split.images[:N_IMAGES], search_split.labels[:N_IMAGES])


def candidate_logits(
    network: str,
    checkpoint: Path,
    k_per_layer: dict[str, int],
    split: Split,
    *,
    granularity: str = "layer",
    init: str = "best",
    seed: int = 0,
    codebook_dtype: str = "fp32",
) -> np.ndarray:
    """Logits of the candidate as the exploration evaluates it (the model is restored after)."""
    spec = get_network(network)
    backend = PyTorchBackend(load_into(spec.build(), checkpoint), spec.input_size, threads=2)
    weights = {name: backend.get_weights(name) for name in k_per_layer}
    cache = ClusterCache(weights, granularity=granularity, init=init, seed=seed)
    shared = {
        name: round_codebook(cache.get(name, k), codebook_dtype, weights=weights[name])
        for name, k in k_per_layer.items()
    }
    backend.set_weights({name: sw.dequantize() for name, sw in shared.items()})
    try:
        return backend.predict(split)
    finally:
        backend.restore()


def decoded_logits(pt_file: Path, network: str, split: Split) -> np.ndarray:
    spec = get_network(network)
    state = torch.load(pt_file, map_location="cpu", weights_only=True)
    model = spec.build()
    model.load_state_dict(state, strict=True)
    return PyTorchBackend(model, spec.input_size, threads=2).predict(split)


def write_results(directory: Path, network: str, settings: dict, best: dict, pareto: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "network": network,
        "status": "ok",
        "settings": settings,
        "best": {"trial": 0, "k_per_layer": best},
        "pareto": [{"trial": trial, "k_per_layer": k} for trial, k in pareto.items()],
    }
    (directory / "results.json").write_text(json.dumps(document))


@pytest.fixture(scope="module")
def lenet5_evaluation(tmp_path_factory) -> Path:
    """A real ``--mode evaluate`` run of the LeNet-5 baseline at k = 16 (evaluation.json)."""
    from weightshare.modes.evaluate import EvaluateConfig
    from weightshare.modes.evaluate import run as evaluate

    directory = tmp_path_factory.mktemp("lenet5_eval")
    evaluate(
        EvaluateConfig(
            network="lenet5_fashionmnist",
            k=None,
            k_per_layer={"conv1": 16, "conv2": 16, "fc1": 16, "fc2": 16, "fc3": 8},
            log_file=directory,
            dataset_scale=0.1,
        )
    )
    return directory


@pytest.fixture(scope="module")
def resnet20_checkpoint(tmp_path_factory) -> Path:
    """ResNet-20 with seeded random init (no trained baseline is needed for exactness)."""
    torch.manual_seed(0)
    model = get_network("resnet20_fashionmnist").build()
    path = tmp_path_factory.mktemp("resnet20") / "resnet20_seed0.pt"
    torch.save(model.state_dict(), path)
    return path


# --- exactness ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("coder", CODER_NAMES)
def test_lenet5_from_evaluation_predicts_like_the_candidate(
    lenet5_evaluation, images, coder, tmp_path
):
    evaluation = json.loads((lenet5_evaluation / "evaluation.json").read_text())
    model_file = tmp_path / "lenet5.wsz"
    result = encode.run(EncodeConfig(lenet5_evaluation, out=model_file, coder=coder))
    assert result["trial"] == "evaluation" and result["coder"] == coder
    assert json.loads((tmp_path / "encoding.json").read_text())["file"] == str(model_file)
    pt_file = tmp_path / "lenet5.pt"
    decode.run(decode.DecodeConfig(model_file, pt_file))

    k_map = {row["name"]: row["k"] for row in evaluation["layers"]}
    expected = candidate_logits(
        "lenet5_fashionmnist", BASELINE_DIR / "lenet5_fashionmnist.pt", k_map, images
    )
    got = decoded_logits(pt_file, "lenet5_fashionmnist", images)
    assert np.array_equal(got, expected)
    # and the unclustered tensors are the checkpoint's, bit for bit
    baseline = torch.load(BASELINE_DIR / "lenet5_fashionmnist.pt", weights_only=True)
    state = torch.load(pt_file, weights_only=True)
    assert list(state) == list(baseline)
    for name in ("conv1.bias", "fc3.bias"):
        assert torch.equal(state[name], baseline[name])


@pytest.mark.slow
def test_resnet20_pareto_trial_with_fp16_codebooks_predicts_like_the_candidate(
    resnet20_checkpoint, images, tmp_path
):
    best = {"conv1": 32, "layer1.0.conv1": 8, "fc": 16}
    trial = {"conv1": 16, "layer1.0.conv1": 4, "layer2.1.conv2": 8, "layer3.2.conv2": 2, "fc": 8}
    settings = {
        "granularity": "channel",
        "init": "best",
        "seed": 3,
        "checkpoint": str(resnet20_checkpoint),
        "checkpoint_sha256": hashlib.sha256(resnet20_checkpoint.read_bytes()).hexdigest(),
        "codebook_dtype": "fp16",
    }
    write_results(tmp_path / "run", "resnet20_fashionmnist", settings, best, {7: trial, 9: best})
    result = encode.run(EncodeConfig(tmp_path / "run", trial=7, coder="huffman"))
    model_file = tmp_path / "run" / "model.wsz"
    decoded = decode_model(model_file.read_bytes())
    # the file records the settings that decide it; the provenance is in encoding.json
    assert decoded.manifest.meta == {
        "granularity": "channel",
        "init": "best",
        "seed": 3,
        "coder": "huffman",
        "codebook_dtype": "fp16",
    }
    assert result["trial"] == 7 and result["source"] == str(tmp_path / "run" / "results.json")
    shared = [t for t in decoded.manifest.tensors if t.codec == "shared"]
    assert [t.name for t in shared] == [f"{n}.weight" for n in trial]
    assert all(t.params["granularity"] == "channel" for t in shared)
    # BatchNorm buffers travel too
    assert decoded.state["layer1.0.bn1.num_batches_tracked"].dtype == np.int64

    pt_file = tmp_path / "resnet20.pt"
    decode.run(decode.DecodeConfig(model_file, pt_file))
    expected = candidate_logits(
        "resnet20_fashionmnist",
        resnet20_checkpoint,
        trial,
        images,
        granularity="channel",
        seed=3,
        codebook_dtype="fp16",
    )
    assert np.array_equal(decoded_logits(pt_file, "resnet20_fashionmnist", images), expected)


@pytest.mark.slow
def test_onnx_output_runs_in_onnxruntime(lenet5_evaluation, images, tmp_path):
    import onnxruntime as ort

    from weightshare.networks.tensors import images_to_tensor

    model_file = tmp_path / "lenet5.wsz"
    encode.run(EncodeConfig(lenet5_evaluation, out=model_file))
    pt_file, onnx_file = tmp_path / "lenet5.pt", tmp_path / "lenet5.onnx"
    decode.run(decode.DecodeConfig(model_file, pt_file))
    decode.run(decode.DecodeConfig(model_file, onnx_file))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = images_to_tensor(images.images, 28).numpy()
    (logits,) = session.run(["logits"], {"images": x})
    expected = decoded_logits(pt_file, "lenet5_fashionmnist", images)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert np.array_equal(logits.argmax(1), expected.argmax(1))


@pytest.mark.slow
def test_an_imagenet_zoo_network_decodes_to_onnx_with_rgb_input(tmp_path):
    """The ONNX export takes the network's channels (3 for the zoo), not always 1."""
    import onnxruntime as ort

    from weightshare.codecs import encode_model

    torch.manual_seed(0)
    name = "mobilenetv3_small_imagenet_pytorch"
    model = get_network(name).build().eval()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    model_file, onnx_file = tmp_path / "zoo.wsz", tmp_path / "zoo.onnx"
    model_file.write_bytes(encode_model(state, {}, network=name))
    decode.run(decode.DecodeConfig(model_file, onnx_file, threads=1))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (images,) = session.get_inputs()
    assert images.shape[1:] == [3, 224, 224]
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    (logits,) = session.run(["logits"], {"images": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-4)


# --- the command line -----------------------------------------------------------------------


@pytest.mark.slow
def test_command_line_encode_then_decode(lenet5_evaluation, tmp_path):
    out = tmp_path / "m.wsz"
    proc = run_main(
        "--mode", "encode", "--log_file", str(lenet5_evaluation), "--out", str(out),
        "--coder", "ans", "--codebook-dtype", "fp32",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "ratio" in proc.stdout and "fc1" in proc.stdout
    note = "predictions may differ"
    assert note not in proc.stdout
    pt_file = tmp_path / "m.pt"
    proc = run_main("--mode", "decode", str(out), "--out", str(pt_file))
    assert proc.returncode == 0, proc.stderr
    assert pt_file.is_file() and f"wrote {pt_file}" in proc.stdout
    proc = run_main("--mode", "decode", "--in", str(out), "--out", str(tmp_path / "n.pt"))
    assert proc.returncode == 0, proc.stderr
    first = torch.load(pt_file, weights_only=True)
    second = torch.load(tmp_path / "n.pt", weights_only=True)
    assert list(second) == list(first)
    assert all(torch.equal(second[name], first[name]) for name in first)  # --in: same model

    corrupt = tmp_path / "corrupt.wsz"
    data = bytearray(out.read_bytes())
    data[-3] ^= 0x10
    corrupt.write_bytes(bytes(data))
    proc = run_main("--mode", "decode", str(corrupt), "--out", str(tmp_path / "c.pt"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {corrupt}: checksum mismatch in chunk")


# --- errors ---------------------------------------------------------------------------------


def test_selection_errors(tmp_path):
    with pytest.raises(UserError, match="is not a directory"):
        read_selection(tmp_path / "missing")
    with pytest.raises(UserError, match=r"neither results\.json"):
        read_selection(tmp_path)
    (tmp_path / "evaluation.json").write_text('{"network": "lenet5_fashionmnist", "layers": []}')
    with pytest.raises(UserError, match="clusters no layer"):
        read_selection(tmp_path)
    with pytest.raises(UserError, match="--trial 3 needs"):
        read_selection(tmp_path, 3)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(UserError, match="is not valid JSON"):
        read_selection(tmp_path)
    write_results(tmp_path, "lenet5_fashionmnist", {}, {"fc1": 4}, {5: {"fc1": 0}})
    assert read_selection(tmp_path).k_per_layer == {"fc1": 4}
    with pytest.raises(UserError, match=r"--trial 4 is not listed in .*; trials: \[0, 5\]"):
        read_selection(tmp_path, 4)
    with pytest.raises(UserError, match=r"k of layer 'fc1' .* must be an int in \[1, 65536\]"):
        read_selection(tmp_path, 5)
    write_results(tmp_path, "lenet5_fashionmnist", {"granularity": "row"}, {"fc1": 4}, {})
    with pytest.raises(UserError, match=r"settings\.granularity must be one of"):
        read_selection(tmp_path)
    document = json.loads((tmp_path / "results.json").read_text())
    document.update(best=None, status="infeasible", settings={})
    (tmp_path / "results.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match="status 'infeasible'"):
        read_selection(tmp_path)


def test_parse_trial():
    assert encode.parse_trial("best") == "best" and encode.parse_trial("12") == 12
    for bad in ("-1", "last", "1.5"):
        with pytest.raises(UserError, match="--trial must be"):
            encode.parse_trial(bad)


def test_encode_refuses_a_different_checkpoint_or_layer(resnet20_checkpoint, tmp_path):
    settings = {"checkpoint": str(resnet20_checkpoint)}
    write_results(tmp_path, "resnet20_fashionmnist", settings, {"fc": 4}, {})
    other = tmp_path / "other.pt"
    with pytest.raises(UserError, match="differs"):
        encode.run(EncodeConfig(tmp_path, checkpoint=str(other)))
    write_results(tmp_path, "resnet20_fashionmnist", settings, {"fc9": 4}, {})
    with pytest.raises(UserError, match="names layer 'fc9', which resnet20_fashionmnist"):
        encode.run(EncodeConfig(tmp_path))
    write_results(tmp_path, "resnet20_fashionmnist", {"checkpoint": str(other)}, {"fc": 4}, {})
    with pytest.raises(UserError, match=r"checkpoint .*other\.pt .* does not exist"):
        encode.run(EncodeConfig(tmp_path))
    changed = {**settings, "checkpoint_sha256": "0" * 64}
    write_results(tmp_path, "resnet20_fashionmnist", changed, {"fc": 4}, {})
    with pytest.raises(UserError, match="changed since"):
        encode.run(EncodeConfig(tmp_path))


def test_encode_detects_a_candidate_it_cannot_reproduce(resnet20_checkpoint, tmp_path):
    evaluation = {
        "network": "resnet20_fashionmnist",
        "checkpoint": str(resnet20_checkpoint),
        "granularity": "layer",
        "init": "linear",
        "layers": [{"name": "fc", "k": 4, "inertia": 1.0}, {"name": "conv1", "k": None}],
    }
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    assert read_selection(tmp_path).init == "linear"
    with pytest.raises(UserError, match="re-clustering layer 'fc' gives inertia"):
        encode.run(EncodeConfig(tmp_path))


def test_decode_errors(tmp_path):
    with pytest.raises(UserError, match=r"--out must end in \.pt or \.onnx"):
        decode.run(decode.DecodeConfig(tmp_path / "x.wsz", tmp_path / "x.bin"))
    with pytest.raises(UserError, match="does not exist"):
        decode.run(decode.DecodeConfig(tmp_path / "x.wsz", tmp_path / "x.pt"))
    (tmp_path / "x.wsz").write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(UserError, match=r"x\.wsz: not a weightshare model file"):
        decode.run(decode.DecodeConfig(tmp_path / "x.wsz", tmp_path / "x.pt"))


def test_mode_argument_checks(tmp_path):
    from weightshare.modes.decode import main as decode_main
    from weightshare.modes.encode import main as encode_main

    args = dict(out=None, model_file=None, in_file=None, threads=1, log_file=None)
    with pytest.raises(UserError, match="needs the model file"):
        decode_main(_namespace(**args))
    with pytest.raises(UserError, match="needs --out"):
        decode_main(_namespace(**{**args, "model_file": tmp_path / "a"}))
    with pytest.raises(UserError, match="two model files"):
        decode_main(_namespace(**{**args, "model_file": tmp_path / "a", "in_file": tmp_path / "b"}))
    with pytest.raises(UserError, match="needs --log_file"):
        encode_main(_namespace(**args))
    with pytest.raises(UserError, match="takes no positional argument"):
        encode_main(_namespace(**{**args, "log_file": tmp_path, "model_file": Path("x")}))


def _namespace(**values):
    import argparse

    return argparse.Namespace(**values)


def test_the_file_summary_shows_a_pruned_layers_positions():
    from weightshare.codecs import encode_model
    from weightshare.modes.encode import file_summary

    rng = np.random.default_rng(6)
    state = {"fc.weight": rng.standard_normal((10, 40)).astype(np.float32)}
    sparse = ClusterCache({"fc": state["fc.weight"]}, seed=0).choice("fc", "4@0.5")
    data = encode_model(state, {"fc.weight": sparse}, network="net")
    summary = file_summary(decode_model(data).manifest)
    (row,) = summary["layers"]
    assert row["position_bytes"] > 0
    stored = row["index_bytes"] + row["codebook_bytes"] + row["position_bytes"]
    assert stored == summary["clustered_stored_bytes"]
    assert row["bits_per_weight"] == 8 * stored / 400
