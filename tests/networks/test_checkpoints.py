import pickle

import pytest
import torch

from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.checkpoints import (
    find_checkpoint,
    latest_checkpoint,
    load_into,
    load_state_dict,
)


class _Exploit:
    """Unpickling this would create a file: weights_only loading must refuse it."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_state_dict_round_trip(tmp_path):
    model = get_network("lenet5_fashionmnist").build()
    path = tmp_path / "1_0.05.pt"
    torch.save(model.state_dict(), path)
    fresh = load_into(get_network("lenet5_fashionmnist").build(), path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key])


def test_hostile_pickle_is_refused_without_running_it(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Exploit(str(target))}, path)
    with pytest.raises(UserError, match="is not a loadable state dict"):
        load_state_dict(path)
    assert not target.exists()


def test_a_pickled_module_is_refused_with_the_safe_conversion_not_torchs_unsafe_hint(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(get_network("lenet5_fashionmnist").build(), path)  # the module, not its weights
    with pytest.raises(UserError) as info:
        load_state_dict(path)
    message = str(info.value)
    assert message == (
        f"{path} is not a loadable state dict: it holds a weightshare.networks.lenet.LeNet5 "
        "object, and pickled objects are never loaded (they can run code); from code you trust, "
        "save the weights alone with torch.save(model.state_dict(), path) and pass that file"
    )
    assert "weights_only" not in message and "succeed" not in message


def test_plain_pickle_and_garbage_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"a": 1}))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01not a checkpoint")
    for path in (plain, garbage):
        with pytest.raises(UserError, match=r"is not a loadable state dict|is not a state dict"):
            load_state_dict(path)


@pytest.mark.parametrize("content", [torch.zeros(3), {"a": 1}, {}, [torch.zeros(1)]])
def test_checkpoints_that_are_not_state_dicts_are_refused(tmp_path, content):
    path = tmp_path / "x.pt"
    torch.save(content, path)
    with pytest.raises(UserError, match="is not a state dict"):
        load_state_dict(path)


def test_a_state_dict_of_another_network_names_the_mismatch(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(get_network("lenet300_fashionmnist").build().state_dict(), path)
    with pytest.raises(UserError, match=r"does not fit the network: missing \['conv1.bias'"):
        load_into(get_network("lenet5_fashionmnist").build(), path)


def test_a_mis_shaped_tensor_is_named(tmp_path):
    state = get_network("lenet5_fashionmnist").build().state_dict()
    state["fc3.weight"] = torch.zeros(11, 84)
    path = tmp_path / "shape.pt"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"shape mismatch in \['fc3.weight'\]"):
        load_into(get_network("lenet5_fashionmnist").build(), path)


def test_latest_checkpoint_takes_the_highest_epoch_numerically(tmp_path):
    for name in ("2_0.1.pt", "10_0.1.pt", "9_0.1.pt", "notes.txt", "best.pt"):
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "10_0.1.pt"
    assert latest_checkpoint(tmp_path / "missing") is None


def test_find_checkpoint_prefers_explicit_then_committed_then_cache(tmp_path):
    explicit = tmp_path / "mine.pt"
    explicit.write_bytes(b"")
    assert find_checkpoint("lenet5_fashionmnist", explicit, tmp_path) == explicit
    assert find_checkpoint("lenet5_fashionmnist", None, tmp_path).name == "lenet5_fashionmnist.pt"
    with pytest.raises(UserError, match="does not exist"):
        find_checkpoint("lenet5_fashionmnist", tmp_path / "nope.pt", tmp_path)
