"""The sparse_shared codec: exact round trips, the smaller position coding wins, hostile input."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tests.codecs.test_hostile import join, split
from weightshare.codecs import CODER_NAMES, decode_model, encode_model
from weightshare.codecs.coders import encode_indices
from weightshare.codecs.sparse import SparseShared, gap_symbols, symbol_positions
from weightshare.dse.clustering import share_weights
from weightshare.errors import UserError


def _sparse(shape=(40, 50), density=0.1, k=8, seed=0) -> tuple[np.ndarray, SparseShared]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape).astype(np.float32)
    mask = rng.random(shape) < density
    return w, SparseShared(mask, share_weights(w[mask], k, init="linear"))


def _file(coder="ans", **kw) -> tuple[bytes, SparseShared]:
    w, sp = _sparse(**kw)
    bias = np.arange(3, dtype=np.float32)
    return encode_model({"w": w, "b": bias}, {"w": sp}, network="t", coder=coder), sp


def test_gap_symbols_insert_fillers_for_long_gaps():
    positions = np.array([0, 5, 40])
    symbols = gap_symbols(positions, 3)  # filler 7 advances 7 places without a weight
    assert symbols.tolist() == [0, 4, 7, 7, 7, 7, 6]
    assert symbol_positions(symbols, 3).tolist() == [0, 5, 40]


@pytest.mark.parametrize("coder", CODER_NAMES)
@pytest.mark.parametrize("density", [0.02, 0.3, 0.9])
def test_round_trip_is_bit_exact(coder, density):
    data, sp = _file(coder, density=density)
    decoded = decode_model(data)
    assert decoded.state["w"].dtype == np.float32
    assert np.array_equal(decoded.state["w"], sp.dequantize())
    assert np.array_equal(decoded.state["w"] != 0, sp.mask)  # no kept weight is exactly 0 here
    assert np.array_equal(decoded.state["b"], np.arange(3, dtype=np.float32))


@pytest.mark.parametrize("density", [0.02, 0.6])
def test_the_smaller_position_coding_is_kept(density):
    data, sp = _file("fixed", density=density)
    doc, _ = split(data)
    entry = doc["tensors"][0]
    stored = {c["kind"]: c["bytes"] for c in entry["chunks"]}["positions"]
    positions = np.flatnonzero(sp.mask)
    gaps = min(
        len(encode_indices(gap_symbols(positions, b).reshape(1, -1), 1 << b, "fixed"))
        for b in range(1, 17)
    )
    assert stored == min(gaps, (sp.mask.size + 7) // 8)
    assert entry["params"]["positions"] == ("gaps" if gaps < (sp.mask.size + 7) // 8 else "bitmap")


def _with_chunk(data: bytes, kind: str, new: bytes, **params) -> bytes:
    """The file with tensor 0's ``kind`` chunk replaced and its params updated, checksums
    recomputed (a crafted file, not a corrupted one)."""
    doc, payload = split(data)
    parts, offset = [], 0
    for entry in doc["tensors"]:
        for chunk in entry["chunks"]:
            parts.append([entry, chunk, payload[offset : offset + chunk["bytes"]]])
            offset += chunk["bytes"]
    doc["tensors"][0]["params"].update(params)
    for part in parts:
        if part[0] is doc["tensors"][0] and part[1]["kind"] == kind:
            part[2] = new
            part[1]["bytes"], part[1]["crc32"] = len(new), zlib.crc32(new)
    return join(doc, b"".join(p[2] for p in parts))


def _error(data: bytes) -> str:
    with pytest.raises(UserError) as info:
        decode_model(data)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_gaps_running_past_the_end_are_refused():
    data, sp = _file("fixed", density=0.02)
    nnz = int(sp.mask.sum())
    symbols = np.full(nnz, 254, dtype=np.uint32)  # 255 places per weight: past 2000 elements
    crafted = _with_chunk(
        data, "positions", encode_indices(symbols.reshape(1, -1), 256, "fixed"),
        positions="gaps", gap_bits=8, symbols=nnz,
    )  # fmt: skip
    assert "past the 2000 elements" in _error(crafted)


def test_trailing_fillers_and_wrong_counts_are_refused():
    data, sp = _file("fixed", density=0.02)
    nnz = int(sp.mask.sum())
    symbols = np.concatenate([gap_symbols(np.flatnonzero(sp.mask), 8), [255]]).astype(np.uint32)
    crafted = _with_chunk(
        data, "positions", encode_indices(symbols.reshape(1, -1), 256, "fixed"),
        positions="gaps", gap_bits=8, symbols=len(symbols),
    )  # fmt: skip
    assert "ends with a filler" in _error(crafted)
    bitmap = np.packbits(sp.mask.reshape(-1), bitorder="little").tobytes()
    crafted = _with_chunk(data, "positions", bitmap, positions="bitmap", nnz=nnz - 1)
    assert f"{nnz} positions, nnz says {nnz - 1}" in _error(crafted)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"nnz": 10**12}, "param 'nnz' must be an int in [1, 2000]"),
        ({"nnz": 0}, "param 'nnz' must be an int in [1, 2000]"),
        ({"symbols": 10**9}, "param 'symbols' must be an int in"),
        ({"gap_bits": 40}, "param 'gap_bits' must be an int in [1, 16]"),
        ({"positions": "csr"}, "param 'positions' must be one of"),
        ({"k_eff": 5000}, "param 'k_eff' must be an int in"),
    ],
)
def test_absurd_params_are_refused(params, message):
    data, _ = _file("ans", density=0.02)
    doc, payload = split(data)
    doc["tensors"][0]["params"].update(params)
    if doc["tensors"][0]["params"]["positions"] != "gaps":
        doc["tensors"][0]["params"].setdefault("gap_bits", 1)
    assert message in _error(join(doc, payload))


def test_truncations_and_short_bitmaps_are_refused():
    data, sp = _file("huffman", density=0.6)
    for cut in range(20, len(data), max(1, len(data) // 50)):
        with pytest.raises(UserError):
            decode_model(data[:cut])
    bitmap = bytearray(np.packbits(sp.mask.reshape(-1), bitorder="little").tobytes())
    crafted = _with_chunk(data, "positions", bytes(bitmap[:-1]), positions="bitmap")
    assert "bitmap of 249 bytes, 2000 elements need 250" in _error(crafted)
