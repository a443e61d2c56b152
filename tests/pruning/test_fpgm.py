"""FPGM: geometric-median scores, structural shrinking, rebuilding from channel counts."""

from __future__ import annotations

import pytest
import torch

from weightshare.errors import UserError
from weightshare.networks.checkpoints import load_into
from weightshare.networks.lenet import LeNet5
from weightshare.networks.resnet_cifar import resnet20
from weightshare.networks.shrink import (
    chains_for,
    channel_counts,
    read_architecture,
    resize,
    shrink,
    write_architecture,
)
from weightshare.pruning.fpgm import fpgm_keep, fpgm_prune, gm_scores


def test_filter_nearest_the_geometric_median_scores_lowest():
    w = torch.tensor([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0]]).reshape(3, 2, 1, 1)
    assert gm_scores(w) == [5.0, 4.0, 7.0]


def test_fpgm_keep_removes_the_lowest_scores():
    torch.manual_seed(0)
    model = LeNet5()
    keep = fpgm_keep(model, "lenet5_fashionmnist", 0.5)
    scores = gm_scores(model.conv2.weight)
    removed = sorted(set(range(16)) - set(keep["conv2"]))
    assert len(keep["conv1"]) == 3 and len(keep["conv2"]) == 8
    assert max(scores[i] for i in removed) <= min(scores[i] for i in keep["conv2"])


def test_shrinking_equals_zeroing_the_removed_channels_downstream():
    torch.manual_seed(0)
    model = LeNet5().eval()
    x = torch.randn(4, 1, 28, 28)
    reference = LeNet5().eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        reference.conv2.weight[:, [1, 4]] = 0.0  # conv1 channels 1 and 4 feed nothing
    small = shrink(model, chains_for("lenet5_fashionmnist"), {"conv1": [0, 2, 3, 5]})
    assert small.conv1.weight.shape == (4, 1, 5, 5) and small.conv2.weight.shape[1] == 4
    torch.testing.assert_close(small(x), reference(x), rtol=0, atol=1e-5)


def test_resnet20_prunes_the_first_conv_of_each_block_and_keeps_residuals():
    torch.manual_seed(0)
    model, _ = fpgm_prune(resnet20().eval(), "resnet20_fashionmnist", 0.5)
    channels = channel_counts(model, chains_for("resnet20_fashionmnist"))
    assert channels["layer1.0.conv1"] == 8 and channels["layer3.2.conv1"] == 32
    assert model.layer2[0].bn1.num_features == 16 and model.layer2[0].conv2.in_channels == 16
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    rebuilt = resize(resnet20(), chains_for("resnet20_fashionmnist"), channels)
    rebuilt.load_state_dict(model.state_dict())  # strict: same keys and shapes


def test_checkpoint_with_architecture_json_loads_into_a_fresh_model(tmp_path):
    torch.manual_seed(0)
    model, _ = fpgm_prune(LeNet5().eval(), "lenet5_fashionmnist", 0.5)
    path = tmp_path / "pruned.pt"
    torch.save(model.state_dict(), path)
    write_architecture(path, "lenet5_fashionmnist", {"conv1": 3, "conv2": 8})
    assert read_architecture(path) == ("lenet5_fashionmnist", {"conv1": 3, "conv2": 8})
    loaded = load_into(LeNet5(), path).eval()
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))


def test_unsupported_network_and_bad_counts_are_refused():
    with pytest.raises(UserError, match="--method fpgm supports"):
        chains_for("lenet300_fashionmnist")
    with pytest.raises(UserError, match=r"conv1 must have 1..6 channels; got 7"):
        resize(LeNet5(), chains_for("lenet5_fashionmnist"), {"conv1": 7})


def test_a_decoded_model_file_of_a_pruned_network_rebuilds_it():
    from weightshare.codecs import decode_model, encode_model
    from weightshare.modes.decode import build_model
    from weightshare.networks.checkpoints import model_state

    torch.manual_seed(0)
    model, _ = fpgm_prune(LeNet5().eval(), "lenet5_fashionmnist", 0.5)
    data = encode_model(model_state(model), {}, network="lenet5_fashionmnist")
    rebuilt, _ = build_model(decode_model(data))
    x = torch.randn(2, 1, 28, 28)
    assert rebuilt.conv2.out_channels == 8
    assert torch.equal(rebuilt(x), model(x))
