import pytest
import torch

from weightshare.errors import UserError
from weightshare.networks import MLPERF_RATIO, NETWORKS, get_network

# Parameter counts of the architectures as documented in docs/networks.md.
PARAMS = {
    "lenet300_fashionmnist": 266_610,
    "lenet5_fashionmnist": 61_706,
    "lenet5caffe_fashionmnist": 431_080,
    "resnet20_fashionmnist": 269_434,
    "mobilenetv2_fashionmnist": 149_034,
    "squeezenet_fashionmnist": 60_970,
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_network_builds_and_maps_its_input_to_ten_logits(name):
    spec = get_network(name)
    torch.manual_seed(0)
    model = spec.build().eval()
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    with torch.inference_mode():
        out = model(torch.zeros(3, 1, spec.input_size, spec.input_size))
    assert out.shape == (3, 10)


def test_categories_follow_mlperf():
    assert {n: s.category for n, s in NETWORKS.items()} == {
        "lenet300_fashionmnist": "heavy",
        "lenet5_fashionmnist": "heavy",
        "lenet5caffe_fashionmnist": "heavy",
        "resnet20_fashionmnist": "heavy",
        "mobilenetv2_fashionmnist": "light",
        "squeezenet_fashionmnist": "heavy",
    }
    assert MLPERF_RATIO == {"heavy": 0.99, "light": 0.98}


def test_unknown_network_lists_the_known_ones():
    with pytest.raises(UserError) as err:
        get_network("alexnet_imagenet")
    assert "unknown --network_dataset 'alexnet_imagenet'" in str(err.value)
    for name in NETWORKS:
        assert name in str(err.value)
