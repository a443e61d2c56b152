"""Every mode's config refuses a bad value on construction, with the exact one-line message
(parameter, allowed values, value received); the command line reports it as ``error:``, exit 2."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import one_line_error, run_main
from weightshare.backends.registry import BACKEND_NAMES
from weightshare.codecs.residual import METHOD_NAMES
from weightshare.dse.driver import ExploreConfig
from weightshare.dse.strategies import OPTIMIZATIONS
from weightshare.errors import UserError
from weightshare.modes.dashboard import DashboardConfig
from weightshare.modes.decode import DecodeConfig
from weightshare.modes.deep_compression import DeepCompressionConfig
from weightshare.modes.encode import EncodeConfig
from weightshare.modes.evaluate import EvaluateConfig
from weightshare.modes.export import ExportConfig
from weightshare.modes.partial_update import METHOD_CHOICES, PartialUpdateConfig
from weightshare.modes.profile import ProfileConfig
from weightshare.modes.prune import PruneConfig
from weightshare.modes.residual import ResidualConfig
from weightshare.modes.residual_decode import ResidualDecodeConfig
from weightshare.modes.residual_eval import ResidualEvalConfig
from weightshare.modes.train import TrainConfig

EVALUATE = EvaluateConfig(network="lenet5_fashionmnist", k=16, k_per_layer=None)
ENCODE = EncodeConfig(log_dir=Path("run"))
DECODE = DecodeConfig(model_file=Path("m.wsz"), out=Path("m.pt"))
EXPLORE = ExploreConfig(k_grid=(2, 4, 16))
RESIDUAL_DECODE = ResidualDecodeConfig(file=Path("b.res"), out=Path("b.pt"))
EXPORT = ExportConfig(log_dir=Path("run"), network="lenet300_fashionmnist")
PARTIAL_UPDATE = PartialUpdateConfig(
    network="lenet300_fashionmnist", methods=("dpu", "rpu"), log_dir=Path("pu")
)
PRUNE = PruneConfig(network="lenet300_fashionmnist", log_file=Path("p"), sparsity=0.9)
DEEP_COMPRESSION = DeepCompressionConfig(
    network="lenet300_fashionmnist", log_file=Path("dc"), sparsity={"fc1.weight": 0.9}
)
RESIDUAL = ResidualConfig(
    network="lenet300_fashionmnist",
    step_exp=15,
    method="ResEntropy",
    pre=Path("1.pt"),
    cur=Path("2.pt"),
    out=Path("r.wsz"),
)
RESIDUAL_EVAL = ResidualEvalConfig(
    network="lenet300_fashionmnist", epochs=(1, 2, 3), methods=("ResEntropy",), step_exp=15
)
PROFILE = ProfileConfig(network="lenet5_fashionmnist")
DASHBOARD = DashboardConfig(storage="sqlite:///study.db")
TRAIN = TrainConfig(network="lenet5_fashionmnist", data_dir=None, cache_dir=Path("cache"))

# (valid config, fields changed, exact message)
REFUSALS = [
    (EVALUATE, {"k": 0}, "--k must be an int in [1, 65536]; got 0"),
    (EVALUATE, {"k": 65537}, "--k must be an int in [1, 65536]; got 65537"),
    (EVALUATE, {"k": 4.0}, "--k must be an int in [1, 65536]; got 4.0"),
    (EVALUATE, {"k": None}, "give exactly one of --k and --k-per-layer"),
    (EVALUATE, {"k_per_layer": {"fc1": 4}}, "give exactly one of --k and --k-per-layer"),
    (
        EVALUATE,
        {"k": None, "k_per_layer": {}},
        "--k-per-layer must be a non-empty map layer -> k; got {}",
    ),
    (
        EVALUATE,
        {"k": None, "k_per_layer": {"fc1": 1 << 17}},
        "k of layer 'fc1' must be an int in [1, 65536]; got 131072",
    ),
    (
        EVALUATE,
        {"granularity": "row"},
        "--granularity must be one of ('layer', 'channel'); got 'row'",
    ),
    (
        EVALUATE,
        {"init": "random"},
        "--init must be one of ('linear', 'quantile', 'kmeans++', 'best'); got 'random'",
    ),
    (EVALUATE, {"dataset_scale": 0.0}, "--dataset_scale must be a float in (0, 1]; got 0.0"),
    (EVALUATE, {"dataset_scale": 1.5}, "--dataset_scale must be a float in (0, 1]; got 1.5"),
    (EVALUATE, {"threads": 0}, "--threads must be an int >= 1; got 0"),
    (EVALUATE, {"backend": "tvm"}, f"--backend must be one of {BACKEND_NAMES}; got 'tvm'"),
    (ENCODE, {"trial": -1}, "--trial must be an int >= 0; got -1"),
    (ENCODE, {"coder": "zip"}, "--coder must be one of ('ans', 'huffman', 'fixed'); got 'zip'"),
    (
        ENCODE,
        {"codebook_dtype": "bf16"},
        "--codebook-dtype must be one of ('fp32', 'fp16'); got 'bf16'",
    ),
    (ENCODE, {"threads": 0}, "--threads must be an int >= 1; got 0"),
    (DECODE, {"threads": -2}, "--threads must be an int >= 1; got -2"),
    (
        EXPLORE,
        {"optimization": "grid"},
        f"--optimization must be one of {OPTIMIZATIONS}; got 'grid'",
    ),
    (
        EXPLORE,
        {"optimization": "paper", "with_local_optimization": False},
        "--optimization paper needs step 1: use --with_local_optimization 1",
    ),
    (EXPLORE, {"accuracy_ratio": 0.0}, "--accuracy-ratio must be a float in (0, 1]; got 0.0"),
    (EXPLORE, {"accuracy_ratio": 1.01}, "--accuracy-ratio must be a float in (0, 1]; got 1.01"),
    (EXPLORE, {"k_grid": ()}, "--k-grid must hold at least one k; got an empty grid"),
    (EXPLORE, {"k_grid": (4, 0)}, "every k of --k-grid must be an int in [1, 65536]; got 0"),
    (
        EXPLORE,
        {"size_model": "bytes"},
        "--size-model must be one of ('fixed', 'coded'); got 'bytes'",
    ),
    (EXPLORE, {"n_trials": -1}, "--n-trials must be an int >= 0; got -1"),
    (
        EXPLORE,
        {"prune_grid": (0.5, 1.0)},
        "every sparsity of --prune-grid must be in [0, 1); got 1.0",
    ),
    (
        EVALUATE,
        {"k": None, "k_per_layer": {"fc1": 4}, "sparsity": {"fc2": 0.5}},
        "sparsity: sparsity_per_layer names 'fc2', which has no k",
    ),
    (
        EVALUATE,
        {"k": None, "k_per_layer": {"fc1": 4}, "sparsity": {"fc1": 1.0}},
        "sparsity: the sparsity of layer 'fc1' must be a number in [0, 1); got 1.0",
    ),
    (
        EVALUATE,
        {"k": None, "k_per_layer": {"fc1": 4}, "sparsity": {"fc1": 0.5}, "granularity": "channel"},
        "pruned layers share one codebook: a --prune-grid point needs --granularity layer; "
        "got 'channel'",
    ),
    (EXPLORE, {"timeout": 0}, "--timeout must be a float > 0; got 0"),
    (EXPLORE, {"population_size": 1}, "--population-size must be an int >= 2; got 1"),
    (EXPLORE, {"seed": -1}, "--seed must be an int >= 0; got -1"),
    (EXPLORE, {"polish_per_layer": -1}, "polish_per_layer must be an int >= 0; got -1"),
    (EXPLORE, {"max_final": 0}, "max_final must be an int >= 1; got 0"),
    (EXPLORE, {"confirm_margin": -0.5}, "--confirm-margin must be a float >= 0; got -0.5"),
    (EXPLORE, {"confirm_margin": float("nan")}, "--confirm-margin must be a float >= 0; got nan"),
    (
        TRAIN,
        {"network": "resnet50_imagenet_pytorch"},
        "resnet50_imagenet_pytorch is an ImageNet zoo network: --mode train does not train it",
    ),
    (TRAIN, {"epochs": 0}, "--epochs must be an int >= 1; got 0"),
    (TRAIN, {"threads": 0}, "--threads must be an int >= 1; got 0"),
    (
        RESIDUAL_DECODE,
        {"out": Path("b.bin")},
        "--mode residual_decode needs --out FILE.pt; got b.bin",
    ),
    (RESIDUAL_DECODE, {"out": None}, "--mode residual_decode needs --out FILE.pt; got None"),
    (
        EXPORT,
        {"log_dir": None},
        "--mode export needs --log_file DIR (a directory of a finished run)",
    ),
    (
        EXPORT,
        {"init": "zero"},
        "--init must be one of ('linear', 'quantile', 'kmeans++', 'best'); got 'zero'",
    ),
    (EXPORT, {"dataset_scale": -0.5}, "--dataset_scale must be a float in (0, 1]; got -0.5"),
    (EXPORT, {"backend": "tvm"}, f"--backend must be one of {BACKEND_NAMES}; got 'tvm'"),
    (
        PROFILE,
        {"network": "mobilenetv1_imagenet"},
        "--mode profile supports the Fashion-MNIST PyTorch networks; got mobilenetv1_imagenet",
    ),
    (PROFILE, {"repeats": 0}, "--repeats must be an int in [1, 10000]; got 0"),
    (PROFILE, {"threads": 0}, "--threads must be an int >= 1; got 0"),
    (
        PARTIAL_UPDATE,
        {"methods": ("dpu", "dpu")},
        f"--method must be a comma list of distinct {METHOD_CHOICES} for --mode partial_update; "
        "got 'dpu,dpu'",
    ),
    (
        PARTIAL_UPDATE,
        {"updating_ratio": 0.0},
        "--updating-ratio must be a float in (0, 1]; got 0.0",
    ),
    (PARTIAL_UPDATE, {"lam": 1.5}, "--lambda must be a float in [0, 1]; got 1.5"),
    (PARTIAL_UPDATE, {"round_epochs": 0}, "--round-epochs must be an int >= 1; got 0"),
    (PARTIAL_UPDATE, {"round_lr": 0.0}, "--round-lr must be a float > 0; got 0.0"),
    (
        PARTIAL_UPDATE,
        {"update_coding": "zip"},
        "--update-coding must be one of ('lossless', 'grid16'); got 'zip'",
    ),
    (
        PARTIAL_UPDATE,
        {"log_dir": None},
        "--mode partial_update needs --log_file DIR for its update files",
    ),
    (
        PARTIAL_UPDATE,
        {"network": "mobilenetv1_imagenet"},
        "--mode partial_update trains the network: --network_dataset must be a trainable "
        "Fashion-MNIST registry network; got mobilenetv1_imagenet",
    ),
    (PRUNE, {"steps": 0}, "--prune-steps must be an int in [1, 100]; got 0"),
    (PRUNE, {"retrain_lr": 11.0}, "--retrain-lr must be a float in (0, 10]; got 11.0"),
    (PRUNE, {"train_images": 60001}, "--train-images must be an int in [1, 60000]; got 60001"),
    (PRUNE, {"log_file": None}, "--mode prune needs --log_file DIR for its outputs"),
    (
        PRUNE,
        {"network": "resnet50_imagenet_pytorch"},
        "resnet50_imagenet_pytorch is an ImageNet zoo network: --mode prune retrains on "
        "Fashion-MNIST only",
    ),
    (PRUNE, {"method": "l1"}, "--method must be one of ('magnitude', 'fpgm'); got 'l1'"),
    (PRUNE, {"quality": 2.0}, "give --sparsity or --quality, not both"),
    (
        PRUNE,
        {"sparsity": {"fc1.weight": 1.0}},
        "--sparsity values must lie in [0, 1); got {'fc1.weight': 1.0}",
    ),
    (PRUNE, {"method": "fpgm", "rate": 1.0}, "--prune-rate must be a float in [0, 1); got 1.0"),
    (
        DEEP_COMPRESSION,
        {"log_file": None},
        "--mode deep_compression needs --log_file DIR for its outputs",
    ),
    (
        DEEP_COMPRESSION,
        {"bits": {"conv": 8, "fc": 17}},
        "--fc-bits must be an int in [1, 16]; got 17",
    ),
    (DEEP_COMPRESSION, {"centroid_lr": 0.0}, "--centroid-lr must be a float in (0, 1]; got 0.0"),
    (
        DEEP_COMPRESSION,
        {"coder": "fixed"},
        "--coder must be an entropy coder (ans or huffman) for P+Q+H; got fixed",
    ),
    (RESIDUAL_EVAL, {"epochs": (3,)}, "a sequence needs at least two epochs; got [3]"),
    (
        RESIDUAL_EVAL,
        {"eval_accuracy": "some"},
        "--eval-accuracy must be one of ('all', 'last', 'none'); got 'some'",
    ),
    (RESIDUAL_EVAL, {"threads": 0}, "--threads must be an int >= 1; got 0"),
    (RESIDUAL_EVAL, {"step_exp": 21}, "--step-exp must be an int in [-60, 20]; got 21"),
    (RESIDUAL, {"out": None}, "--mode residual needs --out FILE (or --log_file DIR)"),
    (RESIDUAL, {"method": "zip"}, f"--method must be one of {METHOD_NAMES}; got 'zip'"),
    (
        RESIDUAL,
        {"eval_accuracy": ""},
        "--eval-accuracy must be one of ('all', 'last', 'none'); got ''",
    ),
    (RESIDUAL, {"threads": 0}, "--threads must be an int >= 1; got 0"),
    (DASHBOARD, {"port": -1}, "--port must be an int in [0, 65535]; got -1"),
    (DASHBOARD, {"port": 65536}, "--port must be an int in [0, 65535]; got 65536"),
    (
        DASHBOARD,
        {"study_name": "a/b"},
        "--study-name must be a non-empty name without '/'; got 'a/b'",
    ),
]


@pytest.mark.parametrize(
    ("config", "changes", "message"),
    REFUSALS,
    ids=[f"{type(c).__name__}-{'-'.join(map(str, ch))}" for c, ch, _ in REFUSALS],
)
def test_a_config_refuses_a_bad_value_with_the_exact_message(config, changes, message):
    with pytest.raises(UserError) as caught:
        replace(config, **changes)
    assert str(caught.value) == message


def test_an_unknown_network_is_refused_by_the_config():
    with pytest.raises(UserError, match=r"^unknown --network_dataset 'nope'; known: lenet300_"):
        replace(EVALUATE, network="nope")


def test_valid_configs_keep_their_values():
    per_layer = replace(EVALUATE, k=None, k_per_layer={"fc1": 4}, backend="onnxruntime")
    assert (per_layer.k, per_layer.k_per_layer, per_layer.backend) == (
        None,
        {"fc1": 4},
        "onnxruntime",
    )
    assert replace(ENCODE, trial=3, codebook_dtype="fp16").trial == 3
    assert replace(DECODE, threads=1).threads == 1
    assert replace(EXPLORE, n_trials=0, timeout=0.5, accuracy_ratio=1).n_trials == 0
    assert replace(TRAIN, epochs=1).epochs == 1
    assert replace(DASHBOARD, port=0).port == 0


def test_the_command_line_reports_a_config_refusal_in_one_line():
    line = one_line_error(run_main("--mode", "evaluate", "--k", "0"))
    assert line == "error: --k must be an int in [1, 65536]; got 0"


def test_the_exploration_refuses_a_bad_setting_before_any_work(tmp_path):
    out = tmp_path / "run"
    line = one_line_error(
        run_main("--mode", "exploration", "--population-size", "1", "--log_file", str(out))
    )
    assert line == "error: --population-size must be an int >= 2; got 1"
    assert not out.exists()
