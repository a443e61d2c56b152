"""Models users bring (--model), datasets they bring (--dataset), export, and bad input.

Most command lines run in-process through ``weightshare.cli.main`` (the same code path as
``python main.py``, without re-importing torch and TensorFlow each time); one runs as a real
subprocess to pin the exit code.
"""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")  # an optional framework: skip, do not fail, without it

from tests.backends.conformance import BackendConformance
from tests.conftest import run_main
from tests.networks.test_inputs import write_image_folder
from weightshare.backends.factory import check_fit
from weightshare.backends.onnx_export import export_onnx
from weightshare.backends.ort import OnnxRuntimeBackend
from weightshare.backends.pytorch import PyTorchBackend
from weightshare.cli import main as cli_main
from weightshare.errors import UserError
from weightshare.modes.loading import load_backend, load_splits
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.datasets import Split
from weightshare.networks.inputs import InputFeeder

LENET = get_network("lenet5_fashionmnist")


def _lenet5():
    return load_into(LENET.build(), BASELINE_DIR / "lenet5_fashionmnist.pt").eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A user's LeNet-5 in every format, and a small RGB classifier as ONNX."""
    root = tmp_path_factory.mktemp("user")
    model = _lenet5()
    out = {
        "onnx": export_onnx(model, torch.zeros(1, 1, 28, 28), root / "lenet5.onnx"),
        "state_dict": root / "lenet5_state.pt",
        "script": root / "lenet5_script.pt",
        "trace": root / "lenet5_trace.pt",
    }
    torch.save(model.state_dict(), out["state_dict"])
    torch.jit.save(torch.jit.script(model), str(out["script"]))
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 28, 28)), str(out["trace"]))
    torch.manual_seed(0)
    rgb = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
    ).eval()
    out["rgb"] = export_onnx(rgb, torch.zeros(1, 3, 32, 32), root / "rgb.onnx")
    out["folder"] = write_image_folder(root / "folder", per_class=3)
    return out


def _cli(capsys, *argv):
    """``python main.py ARGV`` in-process (``--mode evaluate`` unless a mode is given)."""
    code = cli_main([*argv] if "--mode" in argv else ["--mode", "evaluate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(capsys, *argv) -> str:
    code, _, err = _cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_user_onnx_scores_like_pytorch(files, tmp_path, small_search):
    backend, path = load_backend(LENET, None, tmp_path, None, 2, model=files["onnx"])
    assert isinstance(backend, OnnxRuntimeBackend) and path == files["onnx"]
    reference = PyTorchBackend(_lenet5(), 28)
    assert [x.name for x in backend.layers()] == [x.name for x in reference.layers()]
    ours, theirs = backend.evaluate(small_search), reference.evaluate(small_search)
    assert np.array_equal(ours.correct, theirs.correct)


@pytest.mark.parametrize("kind", ["script", "trace"])
def test_torchscript_files_list_the_eager_layers(files, tmp_path, kind, small_search):
    backend, _ = load_backend(LENET, None, tmp_path, None, 2, model=files[kind])
    assert isinstance(backend, PyTorchBackend) and isinstance(backend.feeder, InputFeeder)
    reference = PyTorchBackend(_lenet5(), 28)
    assert [(x.name, x.shape, x.kind) for x in backend.layers()] == [
        (x.name, x.shape, x.kind) for x in reference.layers()
    ]
    assert backend.n_unclustered() == reference.n_unclustered()
    assert np.array_equal(
        backend.evaluate(small_search).correct, reference.evaluate(small_search).correct
    )


class TestTorchScriptConformance(BackendConformance):
    @pytest.fixture
    def backend(self, files, tmp_path):
        return load_backend(LENET, None, tmp_path, None, 2, model=files["script"])[0]

    @pytest.fixture
    def split(self, small_search):
        return small_search


def test_a_state_dict_model_uses_the_registry_architecture(files, tmp_path):
    backend, path = load_backend(LENET, None, tmp_path, None, 2, model=files["state_dict"])
    assert type(backend) is PyTorchBackend and path == files["state_dict"]
    ort, _ = load_backend(
        LENET, None, tmp_path, None, 2, model=files["state_dict"], backend="onnxruntime"
    )
    assert [x.name for x in ort.layers()] == [x.name for x in backend.layers()]
    assert list((tmp_path / "onnx").glob("lenet5_fashionmnist-*.onnx"))  # cached export


def test_the_onnx_export_is_cached_by_checkpoint_hash(tmp_path):
    load_backend(LENET, None, tmp_path, None, 2, backend="onnxruntime")
    cached = list((tmp_path / "onnx").iterdir())
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    load_backend(LENET, None, tmp_path, None, 2, backend="onnxruntime")
    assert cached[0].stat().st_mtime_ns == stamp


def test_image_folder_and_npz_datasets_with_user_models(files, tmp_path):
    folder = f"imagefolder:{files['folder']}"
    search, holdout = load_splits(LENET, None, dataset=folder, model=files["rgb"])
    assert len(search) + len(holdout) == 9
    backend, _ = load_backend(LENET, None, tmp_path, None, 2, model=files["rgb"], dataset=folder)
    assert backend.transform.size == 32 and backend.transform.resize == 37
    assert check_fit(backend, search) == 3
    assert backend.evaluate(search).n_images == len(search)
    # npz: uint8 pixels get x / 255; labels must fit the model's classes
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(8) % 3)
    choice = f"npz:{tmp_path / 'd.npz'}"
    search, _ = load_splits(LENET, None, dataset=choice, model=files["rgb"])
    backend, _ = load_backend(LENET, None, tmp_path, None, 2, model=files["rgb"], dataset=choice)
    assert check_fit(backend, search) == 3
    np.savez(tmp_path / "big.npz", x=x, y=np.arange(8) + 5)
    search, _ = load_splits(LENET, None, dataset=f"npz:{tmp_path / 'big.npz'}")
    with pytest.raises(UserError, match="labels go up to 12 but the model outputs 3 classes"):
        check_fit(backend, search)


def test_wrong_input_shapes_are_one_line(files, tmp_path):
    backend, _ = load_backend(LENET, None, tmp_path, None, 2, model=files["onnx"])
    from weightshare.networks.inputs import ArraySplit

    prepared = ArraySplit("s", np.zeros((2, 3, 20, 20), np.float32), np.zeros(2, np.int64))
    with pytest.raises(UserError, match="do not fit the model input"):
        check_fit(backend, prepared)
    torch_backend, _ = load_backend(LENET, None, tmp_path, None, 2, model=files["script"])
    with pytest.raises(UserError, match="do not fit the model input"):
        check_fit(torch_backend, prepared)


def test_evaluate_and_export_a_user_onnx_model_end_to_end(files, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = _cli(
        capsys,
        "--mode",
        "evaluate",
        "--model",
        str(files["onnx"]),
        "--k",
        "8",
        "--dataset_scale",
        "0.2",
        "--log_file",
        str(run_dir),
    )
    assert code == 0, err
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["backend"] == "onnxruntime" and evaluation["network"] == "model:lenet5.onnx"
    assert evaluation["baseline"]["accuracy_search"] > 0.88
    code, _, err = _cli(
        capsys,
        "--mode",
        "export",
        "--model",
        str(files["onnx"]),
        "--dataset_scale",
        "0.2",
        "--log_file",
        str(run_dir),
    )
    assert code == 0, err
    exported = json.loads((run_dir / "export" / "export.json").read_text())
    assert set(exported["files"]) == {"lenet5.onnx"}
    assert exported["accuracy_search"] == exported["accuracy_search_onnx"]
    assert exported["accuracy_search"] == pytest.approx(evaluation["candidate"]["accuracy_search"])
    shared = OnnxRuntimeBackend(
        run_dir / "export" / "lenet5.onnx",
        transform=OnnxRuntimeBackend(files["onnx"], transform=_fashion()).transform,
    )
    for layer in shared.layers():
        assert len(np.unique(shared.get_weights(layer.name))) <= 8


def _fashion():
    from weightshare.networks.transforms import fashion_mnist_transform

    return fashion_mnist_transform(28)


def test_evaluate_and_export_a_torchscript_model(files, tmp_path, capsys):
    run_dir = tmp_path / "ts"
    argv = ["--model", str(files["script"]), "--dataset_scale", "0.1", "--log_file", str(run_dir)]
    code, _, err = _cli(capsys, "--mode", "evaluate", "--k", "8", *argv)
    assert code == 0, err
    code, _, err = _cli(capsys, "--mode", "export", *argv)
    assert code == 0, err
    result = json.loads((run_dir / "export" / "export.json").read_text())
    assert set(result["files"]) == {"lenet5_script.torchscript.pt", "lenet5_script.onnx"}
    assert result["accuracy_search"] == result["accuracy_search_onnx"]
    from weightshare.backends.pytorch import load_torchscript

    module = load_torchscript(run_dir / "export" / "lenet5_script.torchscript.pt")
    assert len(torch.unique(module.conv2.weight)) <= 8


def test_export_of_a_registry_network_from_results_json(tmp_path, capsys, search_split):
    run_dir = tmp_path / "explore"
    run_dir.mkdir()
    k = {"conv1": 4, "conv2": 8, "fc1": 4, "fc2": 16, "fc3": 32}
    (run_dir / "results.json").write_text(
        json.dumps(
            {
                "network": "lenet5_fashionmnist",
                "best": {"k_per_layer": k},
                "settings": {"granularity": "layer", "init": "linear"},
            }
        )
    )
    code, _, err = _cli(
        capsys,
        "--mode",
        "export",
        "--log_file",
        str(run_dir),
        "--dataset_scale",
        "0.2",
        "--backend",
        "onnxruntime",
    )
    assert code == 0, err
    export = run_dir / "export"
    assert {p.name for p in export.iterdir()} == {
        "lenet5_fashionmnist.pt",
        "lenet5_fashionmnist.onnx",
        "export.json",
    }
    state = torch.load(export / "lenet5_fashionmnist.pt", weights_only=True)
    for name, kk in k.items():
        assert len(torch.unique(state[f"{name}.weight"])) <= kk
    result = json.loads((export / "export.json").read_text())
    assert result["init"] == "linear" and result["k_per_layer"] == k
    assert result["accuracy_search"] == result["accuracy_search_onnx"]
    # a file written for another network is refused in one line
    assert "was written for --network_dataset lenet5_fashionmnist" in _one_line(
        capsys,
        "--mode",
        "export",
        "--log_file",
        str(run_dir),
        "--network_dataset",
        "lenet300_fashionmnist",
    )


def test_export_of_a_keras_model_writes_keras(files, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from weightshare.networks.keras_fashion import to_keras
    from weightshare.networks.keras_runtime import import_keras

    import_keras()
    path = tmp_path / "lenet5.keras"
    to_keras(_lenet5(), 28).save(str(path))
    run_dir = tmp_path / "krun"
    code, _, err = _cli(
        capsys,
        "--mode",
        "evaluate",
        "--model",
        str(path),
        "--k",
        "16",
        "--dataset_scale",
        "0.1",
        "--log_file",
        str(run_dir),
    )
    assert code == 0, err
    assert json.loads((run_dir / "evaluation.json").read_text())["backend"] == "tensorflow"
    code, _, err = _cli(
        capsys,
        "--mode",
        "export",
        "--model",
        str(path),
        "--dataset_scale",
        "0.1",
        "--log_file",
        str(run_dir),
    )
    assert code == 0, err
    exported = run_dir / "export" / "lenet5.keras"
    reported = json.loads((run_dir / "export" / "export.json").read_text())["accuracy_search"]
    # the written file, reloaded and scored on the same images, scores what export reported
    code, _, err = _cli(
        capsys, "--mode", "evaluate", "--model", str(exported), "--k", "16",
        "--dataset_scale", "0.1", "--log_file", str(tmp_path / "reloaded"),
    )  # fmt: skip
    assert code == 0, err
    reloaded = json.loads((tmp_path / "reloaded" / "evaluation.json").read_text())
    assert reloaded["backend"] == "tensorflow"
    assert reloaded["baseline"]["accuracy_search"] == reported
    assert reloaded["candidate"]["accuracy_search"] == reported  # 16 values shared again: same


def test_bad_model_files_and_choices_are_one_line(files, tmp_path, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x12\x34 not an onnx file at all")
    line = _one_line(capsys, "--model", str(junk), "--k", "4")
    assert "is not a readable ONNX model" in line or "is not an ONNX model" in line
    weird = tmp_path / "model.bin"
    weird.write_bytes(b"12345")
    assert "is not a model file this tool reads" in _one_line(capsys, "--model", str(weird))
    assert "does not exist" in _one_line(capsys, "--model", str(tmp_path / "none.onnx"))
    assert "runs on --backend onnxruntime; got 'tensorflow'" in _one_line(
        capsys, "--model", str(files["onnx"]), "--backend", "tensorflow"
    )
    bad_keras = tmp_path / "bad.keras"
    bad_keras.write_bytes(b"PK\x03\x04 nope")
    assert "is not a loadable Keras model" in _one_line(capsys, "--model", str(bad_keras))
    assert "--dataset must be one of" in _one_line(capsys, "--dataset", "cifar10")
    assert "does not exist" in _one_line(
        capsys, "--model", str(files["onnx"]), "--dataset", f"npz:{tmp_path / 'no.npz'}"
    )
    # an ONNX graph without clusterable layers
    from onnx import TensorProto, helper, numpy_helper, save

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 28, 28])],
        initializer=[numpy_helper.from_array(np.ones((1, 28, 28), np.float32), "b")],
    )
    empty = tmp_path / "add.onnx"
    save(helper.make_model(graph, ir_version=9), str(empty))
    assert "has no clusterable layer" in _one_line(capsys, "--model", str(empty))


def test_dataset_that_does_not_fit_is_one_line_in_a_real_process(files, tmp_path):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 3, 20, 20), np.float32), y=np.zeros(4, int))
    proc = run_main(
        "--mode",
        "evaluate",
        "--model",
        str(files["onnx"]),
        "--dataset",
        f"npz:{tmp_path / 'wrong.npz'}",
        "--k",
        "4",
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "do not fit the model input" in lines[0], proc.stderr


def test_zoo_network_without_weights_says_where_to_put_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    write_image_folder(tmp_path / "imagenet" / "val", per_class=1)
    line = _one_line(
        capsys,
        "--network_dataset",
        "resnet50_imagenet_pytorch",
        "--data-dir",
        str(tmp_path / "imagenet"),
        "--k",
        "4",
    )
    assert "resnet50-0676ba61.pth" in line and str(tmp_path / "torch") in line
    assert "--weights PATH" in line
    line = _one_line(capsys, "--network_dataset", "resnet50_imagenet_pytorch", "--k", "4")
    assert "need --data-dir" in line
    assert "does not train it" in _one_line(
        capsys, "--mode", "train", "--network_dataset", "mobilenetv1_imagenet"
    )


def test_fashion_split_type_is_untouched():
    assert Split.__dataclass_fields__.keys() == {"name", "images", "labels"}
