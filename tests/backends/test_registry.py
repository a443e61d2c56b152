"""The backend registry: every registered plugin resolves, ``--model`` formats are recognised
from the file alone, and ``--backend`` offers exactly the registered names."""

import zipfile

import pytest

from tests.conftest import one_line_error, run_main
from weightshare.backends.base import BackendPlugin
from weightshare.backends.registry import (
    BACKEND_NAMES,
    BACKENDS,
    STATE_DICT,
    check_backend,
    get_plugin,
    model_format,
    model_formats,
    plugin_for_format,
)
from weightshare.cli import build_parser
from weightshare.errors import UserError
from weightshare.networks import get_network


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_registered_backend_resolves_to_its_plugin(name):
    plugin = get_plugin(name)
    assert isinstance(plugin, BackendPlugin)
    assert plugin.name == name
    assert plugin_for_format(plugin.model_format) is plugin


def test_formats_are_one_per_backend_then_state_dict():
    assert model_formats() == ("torchscript", "onnx", "keras", STATE_DICT)
    assert BACKEND_NAMES == ("pytorch", "onnxruntime", "tensorflow")


def test_which_backends_take_which_registry_networks():
    takes = {
        spec: tuple(n for n in BACKEND_NAMES if get_plugin(n).takes(get_network(spec)))
        for spec in ("lenet5_fashionmnist", "resnet50_imagenet_pytorch", "mobilenetv2_imagenet")
    }
    assert takes == {
        "lenet5_fashionmnist": ("pytorch", "onnxruntime", "tensorflow"),
        "resnet50_imagenet_pytorch": ("pytorch", "onnxruntime"),
        "mobilenetv2_imagenet": ("tensorflow",),
    }


def _zip(path, names):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
    return path


def test_model_format_reads_suffixes_and_zip_members_only(tmp_path):
    (tmp_path / "a.onnx").write_bytes(b"not parsed")
    (tmp_path / "b.h5").write_bytes(b"not parsed")
    assert model_format(tmp_path / "a.onnx") == "onnx"
    assert model_format(tmp_path / "b.h5") == "keras"
    assert model_format(_zip(tmp_path / "c.pt", ["c/code/__torch__.py", "c/constants.pkl"])) == (
        "torchscript"
    )
    assert model_format(_zip(tmp_path / "d.pt", ["d/data.pkl", "d/data/0"])) == STATE_DICT
    assert model_format(_zip(tmp_path / "e.zip", ["config.json", "model.weights.h5"])) == "keras"


def test_unknown_files_and_backends_are_refused(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"12345")
    with pytest.raises(UserError) as info:
        model_format(tmp_path / "m.bin")
    assert str(info.value) == (
        f"--model {tmp_path / 'm.bin'} is not a model file this tool reads: give one of "
        "torchscript (pytorch), onnx (onnxruntime), keras (tensorflow), or a PyTorch state_dict "
        "(with --network_dataset)"
    )
    with pytest.raises(UserError, match="does not exist"):
        model_format(tmp_path / "none.onnx")
    with pytest.raises(UserError, match=r"--backend must be one of \('pytorch', "):
        check_backend("tvm")
    assert check_backend(None) is None


def test_the_backend_flag_offers_the_registered_names():
    action = next(a for a in build_parser()._actions if a.dest == "backend")
    assert tuple(action.choices) == BACKEND_NAMES
    result = run_main("--mode", "evaluate", "--backend", "tvm")
    assert "argument --backend: invalid choice: 'tvm'" in one_line_error(result)
