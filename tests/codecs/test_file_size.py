"""The exploration's coded size is the model file's size: ``container_size`` and
``ModelFileSizer`` equal ``len()`` of what ``write_container`` / ``encode_model`` write."""

from __future__ import annotations

import re

import numpy as np
import pytest

from weightshare.codecs.container import container_size, manifest_entry, write_container
from weightshare.codecs.model import (
    ModelFileSizer,
    decode_model,
    encode_model,
    file_meta,
    weight_key,
)
from weightshare.codecs.tensors import encode_raw
from weightshare.dse.clustering import ClusterCache, share_weights
from weightshare.errors import UserError

META = file_meta(granularity="layer", init="best", seed=0, coder="ans", codebook_dtype="fp32")


def _state(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "conv1.weight": rng.standard_normal((6, 1, 5, 5)).astype(np.float32),
        "conv1.bias": rng.standard_normal(6).astype(np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "fc.weight": rng.standard_normal((10, 96)).astype(np.float32),
        "fc.bias": rng.standard_normal(10).astype(np.float32),
    }


def test_container_size_equals_the_written_length():
    rng = np.random.default_rng(0)
    payloads = [encode_raw(name, a) for name, a in _state(rng).items()]
    entries = [manifest_entry(p) for p in payloads]
    for meta in (None, {}, META, {"note": "x" * 5000}):
        assert container_size("net", entries, meta) == len(write_container("net", payloads, meta))


@pytest.mark.parametrize("ks", [{}, {"conv1": 4}, {"fc": 2}, {"conv1": 16, "fc": 64}])
def test_the_sizer_equals_the_encoded_file_byte_for_byte(ks):
    state = _state(np.random.default_rng(1))
    sizer = ModelFileSizer(state, network="net", meta=META)
    shared = {
        weight_key(name): share_weights(state[weight_key(name)], k, init="best", seed=0)
        for name, k in ks.items()
    }
    entries = {key: sizer.shared_entry(key, sw) for key, sw in shared.items()}
    data = encode_model(state, shared, network="net", meta=META)
    assert sizer.size(entries) == len(data)


def test_changed_raw_tensors_are_sized_as_the_file_stores_them():
    """A corrected bias or BatchNorm counter keeps its length but changes its crc32, so the
    deflated manifest (and the file) changes: ``raw_entry`` sizes the changed values."""
    state = _state(np.random.default_rng(3))
    sizer = ModelFileSizer(state, network="net", meta=META)
    shared = {"fc.weight": share_weights(state["fc.weight"], 4, init="best", seed=0)}
    changed = {
        "conv1.bias": state["conv1.bias"] + np.float32(0.25),
        "bn.num_batches_tracked": np.array(1, dtype=np.int64),
    }
    entries = {"fc.weight": sizer.shared_entry("fc.weight", shared["fc.weight"])}
    entries |= {name: sizer.raw_entry(name, value) for name, value in changed.items()}
    data = encode_model({**state, **changed}, shared, network="net", meta=META)
    assert sizer.size(entries) == len(data)
    assert entries["conv1.bias"] != sizer.raw_entry("conv1.bias", state["conv1.bias"])  # crc32


def test_the_sizer_names_an_unknown_or_misshapen_tensor():
    state = _state(np.random.default_rng(2))
    sizer = ModelFileSizer(state, network="net", meta=META)
    sw = share_weights(state["fc.weight"], 4, init="best", seed=0)
    with pytest.raises(UserError, match=re.escape("'conv1.weight'")):
        sizer.shared_entry("conv1.weight", sw)
    with pytest.raises(UserError, match=re.escape("'nope.weight' is not in the model")):
        sizer.size({"nope.weight": sizer.shared_entry("fc.weight", sw)})
    with pytest.raises(UserError, match=re.escape("'fc.bias' of shape (9,)")):
        sizer.raw_entry("fc.bias", np.zeros(9, np.float32))


def test_the_file_meta_holds_settings_only():
    assert META == {
        "granularity": "layer",
        "init": "best",
        "seed": 0,
        "coder": "ans",
        "codebook_dtype": "fp32",
    }


@pytest.mark.parametrize(
    "choices", [{"fc": "4@0.5"}, {"conv1": "2@0.9", "fc": 16}, {"conv1": "16@0.3", "fc": "8@0.8"}]
)
def test_the_sizer_equals_the_file_with_pruned_layers_byte_for_byte(choices):
    state = _state(np.random.default_rng(3))
    sizer = ModelFileSizer(state, network="net", meta=META)
    cache = ClusterCache({name: state[weight_key(name)] for name in choices}, seed=0)
    shared = {weight_key(name): cache.choice(name, value) for name, value in choices.items()}
    entries = {key: sizer.shared_entry(key, sw) for key, sw in shared.items()}
    data = encode_model(state, shared, network="net", meta=META)
    assert sizer.size(entries) == len(data)
    decoded = decode_model(data).state
    for key, sw in shared.items():
        assert np.array_equal(decoded[key], sw.dequantize())
    codecs = {e.name: e.codec for e in decode_model(data).manifest.tensors}
    pruned = {weight_key(n) for n, v in choices.items() if isinstance(v, str)}
    assert {n for n, c in codecs.items() if c == "sparse_shared"} == pruned
