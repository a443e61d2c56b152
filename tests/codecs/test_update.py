"""Update files: exact round trips, the grid bound, position coding, hostile bytes."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

from weightshare.codecs import FormatError, decode_model
from weightshare.codecs.container import (
    HEADER,
    MAGIC,
    manifest_text,
    pack_manifest,
    read_container,
)
from weightshare.codecs.residual import fingerprint
from weightshare.codecs.update import _positions
from weightshare.errors import UserError
from weightshare.updating import decode_update, encode_update


def _states(seed: int = 0, changed: float = 0.01):
    rng = np.random.default_rng(seed)
    base = {
        "fc1.weight": rng.normal(0, 0.05, (300, 784)).astype(np.float32),
        "fc1.bias": rng.normal(0, 0.05, 300).astype(np.float32),
        "bn.running_var": rng.random(16).astype(np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "fc2.weight": rng.normal(0, 0.05, (10, 300)).astype(np.float32),
    }
    new = {k: v.copy() for k, v in base.items()}
    w = new["fc1.weight"].reshape(-1)
    idx = rng.choice(w.size, int(changed * w.size), replace=False)
    w[idx] += rng.normal(0, 0.01, idx.size).astype(np.float32)
    new["fc1.bias"] += np.float32(0.001)
    new["bn.num_batches_tracked"] = np.array(9, dtype=np.int64)
    return new, base, np.sort(idx)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def test_lossless_rebuilds_bit_for_bit_and_sends_only_what_changed():
    new, base, idx = _states()
    blob, changed = encode_update(new, base, network="lenet300_fashionmnist")
    assert changed == {"fc1.weight": idx.size, "fc1.bias": 300, "bn.num_batches_tracked": 1}
    out = decode_update(blob, base)
    assert out.changed == changed
    assert list(out.state) == list(base)
    for name in new:
        assert out.state[name].dtype == new[name].dtype
        assert np.array_equal(
            _bits(np.atleast_1d(out.state[name])), _bits(np.atleast_1d(new[name]))
        )
    # base untouched
    assert not np.array_equal(base["fc1.weight"], new["fc1.weight"])
    manifest, _ = read_container(blob)
    params = {e.name: e.params for e in manifest.tensors}
    assert params["fc1.weight"]["positions"] == "gaps"
    assert params["fc1.bias"]["positions"] == "all"
    assert "fc2.weight" not in params


def test_special_values_come_back_exactly():
    base = {"w": np.array([0.0, 1.0, -2.0, 3.0, 5.0], dtype=np.float32)}
    new = {"w": np.array([-0.0, np.nan, np.inf, 3.0, 1e-42], dtype=np.float32)}
    out = decode_update(encode_update(new, base)[0], base)
    assert out.changed == {"w": 4}
    assert np.array_equal(_bits(out.state["w"]), _bits(new["w"]))


def test_grid16_is_within_half_a_step_and_drops_residuals_below_it():
    new, base, _ = _states(1)
    new["fc2.weight"] = base["fc2.weight"] + np.float32(2.0**-18)  # below half a step
    blob, changed = encode_update(new, base, coding="grid16")
    out = decode_update(blob, base)
    assert "fc2.weight" not in changed
    for name in ("fc1.weight", "fc1.bias", "fc2.weight"):
        err = np.abs(out.state[name].astype(np.float64) - new[name].astype(np.float64))
        assert err.max() <= 2.0**-16
    assert out.state["bn.num_batches_tracked"] == 9
    lossless, _ = encode_update(new, base)
    assert len(blob) < len(lossless)


def test_position_coding_takes_the_smaller_of_gaps_and_bitmap():
    size = 10_000
    sparse = np.arange(0, size, 100)
    mode, chunks = _positions(sparse, size)
    assert mode == "gaps" and sum(len(c) for _, c in chunks) < (size + 7) // 8
    dense = np.flatnonzero(np.random.default_rng(0).random(size) < 0.5)
    mode, chunks = _positions(dense, size)
    assert mode == "bitmap" and [len(c) for _, c in chunks] == [(size + 7) // 8]
    assert _positions(np.arange(size), size) == ("all", ())
    base = {"w": np.zeros(size, dtype=np.float32)}
    new = {"w": base["w"].copy()}
    new["w"][dense] = 1.0
    assert np.array_equal(decode_update(encode_update(new, base)[0], base).state["w"], new["w"])


def test_wrong_base_and_plain_model_decoder_refuse():
    new, base, _ = _states()
    blob, _ = encode_update(new, base)
    with pytest.raises(UserError, match="base sha256 differs"):
        decode_update(blob, new)
    with pytest.raises(FormatError, match="partial update"):
        decode_model(blob)
    with pytest.raises(UserError, match="different tensors"):
        encode_update({"x": np.zeros(2, np.float32)}, base)


def test_every_truncation_and_bit_flip_is_a_format_error():
    new, base, _ = _states(2, changed=0.0005)
    blob, _ = encode_update(new, base)
    for cut in range(0, len(blob), max(1, len(blob) // 97)):
        with pytest.raises(FormatError):
            decode_update(blob[:cut], base)
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(blob), 200, replace=False):
        bad = bytearray(blob)
        bad[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises(FormatError):
            decode_update(bytes(bad), base)


def _craft(blob: bytes, edit) -> bytes:
    """Rewrite the manifest with ``edit(document)``, checksums recomputed (a crafted file)."""
    _, _, coding, _, length, _ = HEADER.unpack_from(blob)
    stored = blob[HEADER.size : HEADER.size + length]
    document = json.loads(manifest_text(coding, stored))
    payload = blob[HEADER.size + length :]
    edited = edit(document, payload)
    payload = edited if isinstance(edited, bytes) else payload
    coding, stored = pack_manifest(document["network"], document["tensors"], document["meta"])
    head = HEADER.pack(MAGIC, 1, coding, 0, len(stored), zlib.crc32(stored))
    return head + stored + payload


def _tensor(document, name):
    return next(t for t in document["tensors"] if t["name"] == name)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d, p: _tensor(d, "fc1.weight")["params"].update(count=5), "count|counts"),
        (lambda d, p: _tensor(d, "fc1.weight")["params"].update(count=0), "count"),
        (lambda d, p: _tensor(d, "fc1.weight")["params"].update(positions="all"), "chunks"),
        (lambda d, p: _tensor(d, "fc1.weight")["params"].update(positions="bitmap"), "chunks"),
        (lambda d, p: _tensor(d, "fc1.weight")["params"].update(values="raw"), "values"),
        (lambda d, p: _tensor(d, "fc1.weight")["params"].update(step_exp=-15), "params"),
        (lambda d, p: _tensor(d, "fc1.weight").update(shape=[784, 300]), "in the model"),
        (lambda d, p: _tensor(d, "fc1.weight").update(name="fc9.weight"), "no such tensor"),
        (lambda d, p: _tensor(d, "fc1.weight").update(codec="raw"), "codec"),
        (lambda d, p: d["meta"].pop("partial_update"), "not an update file"),
        (lambda d, p: d["meta"]["partial_update"].update(coding="zip"), "not an update file"),
    ],
)
def test_crafted_manifests_are_refused_with_one_message(edit, message):
    new, base, _ = _states(3, changed=0.001)
    blob = _craft(encode_update(new, base)[0], edit)
    with pytest.raises(FormatError, match=message):
        decode_update(blob, base)


def test_crafted_positions_outside_the_tensor_are_refused():
    base = {"w": np.zeros(100, dtype=np.float32)}
    new = {"w": base["w"].copy()}
    new["w"][[3, 97]] = 1.0
    blob, _ = encode_update(new, base)

    small = {"w": np.zeros(97, dtype=np.float32)}

    def shrink(document, payload):  # claim 97 elements: gaps 3 then 93 end at 97
        document["tensors"][0]["shape"] = [97]
        document["meta"]["partial_update"]["base_sha256"] = fingerprint(small)

    with pytest.raises(FormatError, match="outside the 97 elements"):
        decode_update(_craft(blob, shrink), small)

    def bitmap_pad(document, payload):
        tensor = document["tensors"][0]
        tensor["params"]["positions"] = "bitmap"
        bitmap = bytearray(13)
        bitmap[12] = 0x80  # a bit past element 99
        values = payload[sum(c["bytes"] for c in tensor["chunks"][:2]) :]
        tensor["chunks"] = [
            {"kind": "bitmap", "bytes": 13, "crc32": zlib.crc32(bytes(bitmap))},
            *tensor["chunks"][2:],
        ]
        return bytes(bitmap) + values

    with pytest.raises(FormatError, match="padding after the bitmap"):
        decode_update(_craft(blob, bitmap_pad), base)
    assert struct.calcsize("<8sHBBII") == HEADER.size
