"""The exploration on every backend, and on a user's ONNX model through to its export."""

import json

import pytest
import torch

from tests.backends.names import OTHER_BACKENDS, REFERENCE
from tests.conftest import run_main
from weightshare.backends.onnx_export import export_onnx
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into

SMALL = [
    "--mode",
    "exploration",
    "--workers",
    "0",
    "--dataset_scale",
    "0.04",
    "--k-grid",
    "4,16",
    "--n-trials",
    "4",
    "--population-size",
    "2",
]


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_the_exploration_runs_on_each_backend_and_agrees_with_pytorch(tmp_path, backend):
    docs = {}
    for name in (REFERENCE, backend):
        out = tmp_path / name
        proc = run_main(
            "--network_dataset",
            "lenet5_fashionmnist",
            "--backend",
            name,
            "--log_file",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            *SMALL,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        docs[name] = json.loads((out / "results.json").read_text())
    assert docs[backend]["backend"] == backend and docs[REFERENCE]["backend"] == REFERENCE
    assert docs[backend]["settings"]["backend"] == backend
    base, other = docs[REFERENCE]["baseline"], docs[backend]["baseline"]
    assert other["accuracy_search_full"] == pytest.approx(base["accuracy_search_full"], abs=0.001)
    assert docs[backend]["best"]["passes_holdout"] is True


@pytest.mark.slow
def test_a_user_onnx_model_goes_through_exploration_and_export(tmp_path):
    spec = get_network("lenet5_fashionmnist")
    model = load_into(spec.build(), BASELINE_DIR / "lenet5_fashionmnist.pt").eval()
    onnx_file = export_onnx(model, torch.zeros(1, 1, 28, 28), tmp_path / "mine.onnx")
    out = tmp_path / "run"
    proc = run_main("--model", str(onnx_file), "--log_file", str(out), *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["backend"] == "onnxruntime" and doc["network"] == "model:mine.onnx"
    assert doc["best"]["passes_holdout"] is True
    proc = run_main("--mode", "export", "--model", str(onnx_file), "--log_file", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = json.loads((out / "export" / "export.json").read_text())
    assert exported["accuracy_search"] == exported["accuracy_search_onnx"]


@pytest.mark.slow
def test_a_keras_named_onnx_model_is_explored_and_exported_by_layer_name(tmp_path):
    """tf2onnx names (``sequential_1/fc1/Cast/ReadVariableOp:0``): results.json lists ``fc1``
    with the initializer beside it, and the export writes the shared weights back there."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from tests.backends.test_ort import tf_style_names

    spec = get_network("lenet5_fashionmnist")
    model = load_into(spec.build(), BASELINE_DIR / "lenet5_fashionmnist.pt").eval()
    torch_file = export_onnx(model, torch.zeros(1, 1, 28, 28), tmp_path / "torch.onnx")
    onnx_file = tmp_path / "keras.onnx"
    onnx.save(tf_style_names(onnx.load(str(torch_file))), str(onnx_file))
    out = tmp_path / "run"
    proc = run_main("--model", str(onnx_file), "--log_file", str(out), *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    names = ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert [(x["name"], x["weight_name"]) for x in doc["layers"]] == [
        (n, f"sequential_1/{n}/Cast/ReadVariableOp:0") for n in names
    ]
    best = doc["best"]["k_per_layer"]
    assert best and set(best) <= set(names)
    proc = run_main("--mode", "export", "--model", str(onnx_file), "--log_file", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = json.loads((out / "export" / "export.json").read_text())
    assert exported["k_per_layer"] == best
    assert exported["accuracy_search"] == exported["accuracy_search_onnx"]
    graph = onnx.load(str(out / "export" / "keras.onnx")).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for name, k in best.items():
        assert len(np.unique(weights[f"sequential_1/{name}/Cast/ReadVariableOp:0"])) <= k
