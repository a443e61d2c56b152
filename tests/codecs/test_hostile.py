"""Hostile input: mutated real model files give a UserError (or decode), never anything else.

The files are the LeNet-5 baseline at k = 4 (layer granularity) and k = 3 (channel), one per
coder. Truncations and bit flips must always be caught (checksums); crafted files, whose
checksums are recomputed after the change, must give a UserError or a successful decode, and
never an exception of another type, a hang or an unbounded allocation.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightshare.codecs import CODER_NAMES, decode_model, encode_model
from weightshare.codecs.container import HEADER, MANIFEST_DICT, MANIFEST_JSON, manifest_text
from weightshare.dse.clustering import ClusterCache
from weightshare.errors import UserError
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into

FILES = [(coder, granularity) for coder in CODER_NAMES for granularity in ("layer", "channel")]
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class _Files(dict):
    """The encoded files by (coder, granularity); a short repr keeps hypothesis reports small."""

    def __repr__(self) -> str:
        return f"<{len(self)} model files>"


@pytest.fixture(scope="module")
def files() -> _Files:
    model = load_into(
        get_network("lenet5_fashionmnist").build(), BASELINE_DIR / "lenet5_fashionmnist.pt"
    )
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    layers = ("conv1", "conv2", "fc1", "fc2", "fc3")
    out = _Files()
    for granularity, k in (("layer", 4), ("channel", 3)):
        cache = ClusterCache({n: state[f"{n}.weight"] for n in layers}, granularity=granularity)
        shared = {f"{n}.weight": cache.get(n, k) for n in layers}
        for coder in CODER_NAMES:
            out[coder, granularity] = encode_model(
                state, shared, network="lenet5_fashionmnist", coder=coder
            )
    return out


def split(data: bytes) -> tuple[dict, bytes]:
    """(manifest document, payload) of a valid file."""
    _, _, coding, _, length, _ = HEADER.unpack_from(data)
    stored = data[HEADER.size : HEADER.size + length]
    text = manifest_text(coding, stored)
    return json.loads(text), data[HEADER.size + length :]


def join(document: dict, payload: bytes) -> bytes:
    """A file with valid header and manifest checksums around any manifest and payload."""
    text = json.dumps(document).encode()
    header = HEADER.pack(b"\x89WSZ\r\n\x1a\n", 1, MANIFEST_JSON, 0, len(text), zlib.crc32(text))
    return header + text + payload


def decode_or_user_error(data: bytes, **kwargs) -> bool:
    """True when ``data`` decodes, False on a UserError; anything else fails the test."""
    try:
        decoded = decode_model(data, **kwargs)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)
        return False
    for entry in decoded.manifest.tensors:
        assert decoded.state[entry.name].shape == entry.shape
    return True


def test_the_unmutated_files_decode(files):
    for data in files.values():
        assert decode_or_user_error(data)
        assert decode_or_user_error(join(*split(data)))


@pytest.mark.parametrize(("coder", "granularity"), FILES)
@HYPOTHESIS
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncation_is_always_caught(files, coder, granularity, fraction):
    data = files[coder, granularity]
    assert not decode_or_user_error(data[: int(fraction * len(data))])


@pytest.mark.parametrize(("coder", "granularity"), FILES)
@HYPOTHESIS
@given(data=st.data())
def test_bit_flips_are_always_caught(files, coder, granularity, data):
    original = files[coder, granularity]
    positions = data.draw(
        st.lists(st.integers(0, 8 * len(original) - 1), min_size=1, max_size=8, unique=True)
    )
    mutated = bytearray(original)
    for position in positions:
        mutated[position // 8] ^= 1 << (position % 8)
    assert not decode_or_user_error(bytes(mutated))


@pytest.mark.parametrize("coder", CODER_NAMES)
@HYPOTHESIS
@given(data=st.data())
def test_corrupt_deflated_manifests_behind_a_valid_checksum_give_user_errors(files, coder, data):
    # past the crc32 (recomputed): the inflater itself meets the damaged coding-2 stream
    original = files[coder, "layer"]
    _, version, coding, _, length, _ = HEADER.unpack_from(original)
    assert coding == MANIFEST_DICT
    stored = bytearray(original[HEADER.size : HEADER.size + length])
    positions = data.draw(
        st.lists(st.integers(0, 8 * len(stored) - 1), min_size=1, max_size=8, unique=True)
    )
    for position in positions:
        stored[position // 8] ^= 1 << (position % 8)
    cut = data.draw(st.integers(0, len(stored)))
    stored = bytes(stored[:cut]) + data.draw(st.binary(max_size=4))
    header = HEADER.pack(original[:8], version, coding, 0, len(stored), zlib.crc32(stored))
    decode_or_user_error(header + stored + original[HEADER.size + length :])


@pytest.mark.parametrize("coder", CODER_NAMES)
@HYPOTHESIS
@given(offset=st.integers(0, HEADER.size - 1), junk=st.binary(min_size=1, max_size=8))
def test_header_overwrites_are_caught(files, coder, offset, junk):
    original = files[coder, "layer"]
    mutated = bytearray(original)
    mutated[offset : offset + len(junk)] = junk
    mutated = bytes(mutated[: len(original)])
    assert decode_or_user_error(mutated) == (mutated == original)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, 2, 3, 4, 16, 255, 256, 65536, 2**31, 2**40])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "layer", "channel", "ans", "huffman", "fixed", "fp16", "raw", "shared"])
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = (
    "name",
    "shape",
    "dtype",
    "codec",
    "params",
    "chunks",
    "params.k",
    "params.k_eff",
    "params.groups",
    "params.granularity",
    "params.coder",
    "params.codebook_dtype",
    "chunks.0.bytes",
    "chunks.0.kind",
    "chunks.1.bytes",
    "shape.0",
    "shape.-1",
)


def _set(entry: dict, path: str, value) -> None:
    """Set ``entry[a][b]...`` for ``path`` "a.b...", skipping paths an earlier change broke."""
    *parents, last = path.split(".")
    target = entry
    for key in parents:
        if not isinstance(target, dict) or key not in target:
            return
        target = target[key]
    if isinstance(target, list):
        if last.lstrip("-").isdigit() and -len(target) <= int(last) < len(target):
            target[int(last)] = value
    elif isinstance(target, dict):
        target[last] = value


@pytest.mark.parametrize(("coder", "granularity"), FILES)
@HYPOTHESIS
@given(data=st.data())
def test_crafted_manifests_give_user_errors(files, coder, granularity, data):
    document, payload = split(files[coder, granularity])
    tensor = data.draw(st.integers(0, len(document["tensors"]) - 1))
    for _ in range(data.draw(st.integers(1, 3))):
        _set(
            document["tensors"][tensor], data.draw(st.sampled_from(FIELDS)), data.draw(json_values)
        )
    decode_or_user_error(join(document, payload))


@pytest.mark.parametrize(("coder", "granularity"), FILES)
@HYPOTHESIS
@given(data=st.data())
def test_crafted_payloads_give_user_errors(files, coder, granularity, data):
    """Corrupt one chunk and re-sign it: the coders' own checks must hold."""
    document, payload = split(files[coder, granularity])
    located, offset = [], 0
    for tensor in document["tensors"]:
        for chunk in tensor["chunks"]:
            if chunk["bytes"]:
                located.append((offset, chunk))
            offset += chunk["bytes"]
    begin, chunk = located[data.draw(st.integers(0, len(located) - 1))]
    end = begin + chunk["bytes"]
    body = bytearray(payload[begin:end])
    action = data.draw(st.sampled_from(["flip", "truncate", "extend", "random"]))
    if action == "flip":
        flips = data.draw(st.lists(st.integers(0, 8 * len(body) - 1), min_size=1, max_size=4))
        for position in flips:
            body[position // 8] ^= 1 << (position % 8)
    elif action == "truncate":
        body = body[: data.draw(st.integers(0, len(body) - 1))]
    elif action == "extend":
        body += data.draw(st.binary(min_size=1, max_size=16))
    else:
        body = bytearray(data.draw(st.binary(max_size=2 * len(body))))
    chunk["bytes"], chunk["crc32"] = len(body), zlib.crc32(bytes(body))
    decode_or_user_error(join(document, payload[:begin] + bytes(body) + payload[end:]))


def test_declared_sizes_cannot_force_large_allocations(files):
    document, payload = split(files["ans", "layer"])
    for entry in document["tensors"]:
        if entry["codec"] == "shared":
            entry["shape"] = [1 << 20, 1 << 20]  # 2**40 weights from a few kB
            entry["params"]["groups"] = 1
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="max_elements"):
            decode_model(join(document, payload))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(payload) + (1 << 20)


def test_k1_layer_with_a_huge_shape_is_bounded_by_max_elements(files):
    document, payload = split(files["fixed", "layer"])
    entry = next(t for t in document["tensors"] if t["name"] == "fc1.weight")
    # k_eff = 1 needs no index bytes at all: only max_elements bounds the output
    entry["params"].update(k=1, k_eff=1)
    entry["shape"] = [4096, 4096]
    offset = 0
    for t in document["tensors"]:
        for c in t["chunks"]:
            if t is entry:
                size = c["bytes"]
                new = struct.pack("<f", 0.5) if c["kind"] == "codebook" else b""
                payload = payload[:offset] + new + payload[offset + size :]
                c["bytes"], c["crc32"] = len(new), zlib.crc32(new)
                size = len(new)
            else:
                size = c["bytes"]
            offset += size
    data = join(document, payload)
    with pytest.raises(UserError, match="max_elements"):
        decode_model(data, max_elements=1 << 20)
    decoded = decode_model(data, max_elements=1 << 25)
    assert decoded.state["fc1.weight"].shape == (4096, 4096)
    assert np.all(decoded.state["fc1.weight"] == 0.5)


def test_wide_tables_are_bounded_by_the_declared_scalars(files):
    """A channel tensor with k_eff above its weights per group could ask for G x k counts."""
    document, payload = split(files["ans", "channel"])
    entry = next(t for t in document["tensors"] if t["name"] == "fc1.weight")
    entry["params"].update(k=65536, k_eff=65535)
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="k_eff 65535 exceeds the 400 weights per group"):
            decode_model(join(document, payload))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(payload) + (1 << 20)
