"""Residual coding of checkpoints: round trips, bounds, closed loop, golden bytes, hostile files."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.codecs.test_hostile import HYPOTHESIS, _Files, _set, join, json_values, split
from weightshare.codecs import FormatError, decode_model
from weightshare.codecs.container import (
    HEADER,
    TensorPayload,
    manifest_text,
    read_container,
    write_container,
)
from weightshare.codecs.residual import (
    METHOD_NAMES,
    RESIDUAL_CODECS,
    GridSettings,
    buckets,
    decode_residual,
    encode_residual,
    fingerprint,
    intdelta,
    varbits,
)
from weightshare.codecs.residual.categorical import decode_symbols, encode_symbols
from weightshare.codecs.residual.metrics import distortion
from weightshare.errors import UserError

STEP = 2.0**-15


def _walk(seed: int, n: int = 4000, scale: float = 1e-3) -> tuple[dict, dict]:
    """Two 'epochs' of a small network with every kind of state-dict tensor."""
    rng = np.random.default_rng(seed)
    prev = {
        "conv.weight": (rng.standard_normal((8, 4, 3, 3)) * 0.2).astype(np.float32),
        "conv.bias": (rng.standard_normal(8) * 0.05).astype(np.float32),
        "bn.weight": (1 + rng.standard_normal(8) * 0.1).astype(np.float32),
        "bn.running_mean": rng.standard_normal(8).astype(np.float32),
        "bn.running_var": rng.uniform(0.5, 2, 8).astype(np.float32),
        "bn.num_batches_tracked": np.array(468, dtype=np.int64),
        "fc.weight": (rng.standard_normal((10, n // 10)) * 0.05).astype(np.float32),
        "scalar": np.array(0.5, dtype=np.float64),
        "mask": rng.integers(0, 2, 16).astype(bool),
    }
    cur = {}
    for name, value in prev.items():
        if value.dtype.kind == "f":
            cur[name] = (value + rng.standard_normal(value.shape) * scale).astype(value.dtype)
        elif value.dtype == bool:
            cur[name] = value ^ (rng.random(value.shape) < 0.2)
        else:
            cur[name] = value + 469
    return prev, cur


def _same_bits(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
        for k in a
    )


# --- building blocks -----------------------------------------------------------------------


def test_buckets_round_trip_extremes():
    z64 = np.array(
        [0, 1, 2, 3, 4, 5, 7, 8, 2**53 - 1, 2**53, 2**53 + 1, 2**63, 2**64 - 1], dtype=np.uint64
    )
    for z in (z64, np.array([0, 1, 4, 255, 2**31, 2**32 - 1], dtype=np.uint32)):
        symbols, widths, offsets = buckets.to_buckets(z)
        assert (buckets.from_buckets(symbols, offsets) == z).all()
        assert (widths == buckets.WIDTHS[symbols]).all()
    assert buckets.symbols_for_bits(16) == 60 and buckets.symbols_for_bits(64) == 252


@given(st.lists(st.tuples(st.integers(0, 64), st.integers(0, 2**64 - 1)), max_size=300))
def test_varbits_round_trip(pairs):
    widths = np.array([w for w, _ in pairs], dtype=np.uint8)
    values = np.array([v & ((1 << w) - 1) for w, v in pairs], dtype=np.uint64)
    data = varbits.pack_varbits(values, widths)
    assert len(data) == varbits.packed_bytes(widths)
    assert varbits.padding_is_zero(data, widths)
    assert (varbits.unpack_varbits(data, widths) == values).all()


def test_symbols_round_trip_and_one_symbol():
    rng = np.random.default_rng(0)
    symbols = rng.geometric(0.2, 5000).clip(0, 59).astype(np.int32)
    assert (decode_symbols(encode_symbols(symbols), 5000, 61) == symbols).all()
    one = np.full(100, 7, dtype=np.int32)
    data = encode_symbols(one)
    assert len(data) < 10 and (decode_symbols(data, 100, 61) == one).all()
    assert decode_symbols(encode_symbols(one[:0]), 0, 61).size == 0


@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<f2", "<i8", "<i4", "u1", "?"])
def test_intdelta_bijection(dtype):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (2, 64 * np.dtype(dtype).itemsize), dtype=np.uint8)
    if dtype == "?":
        raw &= 1
    cur, prev = (r.view(dtype) for r in raw)
    back = intdelta.apply_codes(prev, intdelta.residual_codes(cur, prev))
    assert back.tobytes() == cur.tobytes()


# --- lossless ------------------------------------------------------------------------------

_FLOAT_BITS = hnp.arrays(np.uint32, st.integers(0, 200), elements=st.integers(0, 2**32 - 1))
_SPECIAL = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, 3.4e38], dtype=np.float32
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FLOAT_BITS, st.integers(0, 2**32 - 1), st.sampled_from(["random", "near", "special"]))
def test_res_entropy_is_bit_exact(bits, seed, how):
    """Any float32 bit patterns (NaN payloads, inf, -0.0, subnormals) come back bit for bit."""
    rng = np.random.default_rng(seed)
    cur = bits.view(np.float32)
    if how == "special" and cur.size:
        cur = cur.copy()
        cur[rng.integers(0, cur.size, min(cur.size, 9))] = _SPECIAL[: min(cur.size, 9)]
    if how == "near":
        step = rng.integers(-3, 4, cur.size).astype(np.int32).view(np.uint32)
        prev = (bits + step).view(np.float32)
    else:
        prev = rng.integers(0, 2**32, cur.size, dtype=np.uint32).view(np.float32)
    prev_state = {"w": prev, "n": np.array(seed, dtype=np.int64)}
    cur_state = {"w": cur, "n": np.array(seed // 2, dtype=np.int64)}
    data = encode_residual(cur_state, prev_state, method="ResEntropy")
    assert _same_bits(decode_residual(data, prev_state).state, cur_state)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.int8, np.uint8, np.bool_])
def test_res_entropy_other_dtypes(dtype):
    rng = np.random.default_rng(2)
    raw = rng.integers(0, 256, (2, 300 * np.dtype(dtype).itemsize), dtype=np.uint8)
    if dtype is np.bool_:
        raw &= 1
    prev, cur = ({"t": r.view(dtype).reshape(3, -1)} for r in raw)
    data = encode_residual(cur, prev, method="ResEntropy")
    assert _same_bits(decode_residual(data, prev).state, cur)


def test_res_entropy_beats_the_seed_and_covers_buffers():
    prev, cur = _walk(3)
    data = encode_residual(cur, prev, method="ResEntropy")
    manifest, _ = read_container(data)
    assert [t.name for t in manifest.tensors] == list(cur)  # BN buffers and counters included
    original = sum(v.nbytes for v in cur.values())
    assert 1 - len(data) / original > 0.18  # the seed's best lossless saving was 18 %
    assert _same_bits(decode_residual(data, prev).state, cur)


# --- lossy ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(1e-7, 4.0), st.integers(-20, -8))
def test_grid_error_bound_and_exact_escapes(seed, scale, step_exp):
    rng = np.random.default_rng(seed)
    prev = (rng.standard_normal(500) * rng.choice([1e-3, 1, 100])).astype(np.float32)
    cur = (prev + rng.laplace(0, scale, 500)).astype(np.float32)
    cur[rng.integers(0, 500, 5)] = [np.nan, np.inf, -np.inf, -0.0, 1e-44]
    prev[rng.integers(0, 500, 2)] = [np.nan, np.inf]
    state = {"w": cur}
    data = encode_residual(
        state, {"w": prev}, method="ResEntropy16bits", settings=GridSettings(step_exp=step_exp)
    )
    rec = decode_residual(data, {"w": prev}).state["w"]
    step = 2.0**step_exp
    with np.errstate(invalid="ignore"):
        err = np.abs(cur.astype(np.float64) - rec.astype(np.float64))
    exact = cur.view(np.uint32) == rec.view(np.uint32)
    assert np.all(exact | (err <= step / 2)), err[~exact].max()
    bad = ~np.isfinite(cur) | ~np.isfinite(prev)
    assert exact[bad].all()  # escapes come back bit for bit


def test_grid_rounds_to_nearest_without_minus_zero():
    prev = np.zeros(6, dtype=np.float32)
    cur = np.array([0.4, -0.4, 0.6, -0.6, 1.5, -1.5], dtype=np.float32) * STEP
    rec = decode_residual(
        encode_residual({"w": cur}, {"w": prev}, method="ResEntropy16bits"), {"w": prev}
    ).state["w"]
    np.testing.assert_array_equal(rec / STEP, [0, 0, 1, -1, 2, -2])  # ties to even


@pytest.mark.parametrize("method", ["ResEntropy16bits", "ResidualFloat16", "Float16"])
def test_lossy_methods_bounds(method):
    prev, cur = _walk(4)
    ref = prev if method != "Float16" else None
    rec = decode_residual(encode_residual(cur, prev, method=method), ref).state
    d = distortion(cur, rec)
    assert d.n_changed_other == 0  # integer counters and booleans are always exact
    assert {k: v.dtype for k, v in rec.items()} == {k: v.dtype for k, v in cur.items()}
    if method == "ResEntropy16bits":
        assert d.max_abs_err <= STEP / 2
    elif method == "ResidualFloat16":  # fp16 of a ~1e-3 residual: relative 2^-11
        assert d.max_abs_err < 1e-5
    else:
        assert d.max_abs_err < 2e-3


def test_closed_loop_has_no_drift():
    """Ten steps, each coded against the decoder's reconstruction: step 10 obeys step 1's bound."""
    rng = np.random.default_rng(5)
    states = [{"w": (rng.standard_normal(3000) * 0.1).astype(np.float32)}]
    for _ in range(10):
        states.append(
            {"w": (states[-1]["w"] + rng.standard_normal(3000) * 3e-3).astype(np.float32)}
        )
    held, open_loop = states[0], states[0]
    errors, open_errors = [], []
    for cur in states[1:]:
        held = decode_residual(encode_residual(cur, held, method="ResEntropy16bits"), held).state
        errors.append(distortion(cur, held).max_abs_err)
        # open loop (residuals between originals, applied to reconstructions) drifts
        prev_orig = states[len(open_errors)]
        data = encode_residual(cur, prev_orig, method="ResidualFloat16")
        delta = decode_residual(data, prev_orig).state["w"].astype(np.float64) - prev_orig["w"]
        open_loop = {"w": (open_loop["w"] + delta).astype(np.float32)}
        open_errors.append(distortion(cur, open_loop).max_abs_err)
    assert max(errors) <= STEP / 2
    assert errors[-1] <= STEP / 2 and errors[0] <= STEP / 2
    assert open_errors[-1] > open_errors[0]  # what the closed loop avoids


def test_per_tensor_step():
    prev, cur = _walk(6)
    grid = GridSettings(step_exp=-15, tensor_step_exp={"fc.weight": -10})
    data = encode_residual(cur, prev, method="ResEntropy16bits", settings=grid)
    rec = decode_residual(data, prev).state
    fc = distortion({"w": cur["fc.weight"]}, {"w": rec["fc.weight"]}).max_abs_err
    conv = distortion({"w": cur["conv.weight"]}, {"w": rec["conv.weight"]}).max_abs_err
    assert STEP / 2 < fc <= 2.0**-11 and conv <= STEP / 2
    assert len(data) < len(encode_residual(cur, prev, method="ResEntropy16bits"))


def test_float16_needs_no_reference_and_decodes_with_decode_model():
    _, cur = _walk(7)
    data = encode_residual(cur, None, method="Float16")
    assert decode_residual(data, None).state.keys() == cur.keys()
    assert decode_model(data).state["fc.weight"].dtype == np.float32


# --- golden bytes ----------------------------------------------------------------------------

# sha256 of (inflated manifest + payload) of a fixed input, per method: a change is a format
# change (or a new constriction coder); see tests/codecs/test_golden.py
GOLDEN = {
    "Float16": "bec8a7abc3989991b1d6f8b48ec94056f7869950d64592e9db894729cf5489d8",
    "ResidualFloat16": "2e78cb60d168b62022b0d8df4d0b830845ecca4233e0988d545adfc16ad7ec43",
    "ResEntropy16bits": "6ddb021f43921b9a8be8222431db33ef8f1e91193e02cc88d8ee6c5210f10dd1",
    "ResEntropy": "c98e7e397c3f14a15c5e6eed47e0da266fcf8d7112d475424dc6c9d3030f6145",
}


def golden_pair() -> tuple[dict, dict]:
    """Integer arithmetic only: no RNG, no platform maths."""
    i = np.arange(240)
    prev = {
        "w": (((i * 37) % 101 - 50) / 128).astype(np.float32).reshape(10, 24),
        "bn.running_var": np.linspace(0.5, 2.0, 4).astype(np.float32),
        "bn.num_batches_tracked": np.array(100, dtype=np.int64),
    }
    cur = {
        "w": prev["w"] + (((i * 13) % 29 - 14) / 4096).astype(np.float32).reshape(10, 24),
        "bn.running_var": prev["bn.running_var"] * np.float32(1.0625),
        "bn.num_batches_tracked": np.array(200, dtype=np.int64),
    }
    return prev, cur


def _stable_hash(data: bytes) -> str:
    length = HEADER.unpack_from(data)[4]
    stored = data[HEADER.size : HEADER.size + length]
    manifest = manifest_text(data[10], stored)
    return hashlib.sha256(manifest + data[HEADER.size + length :]).hexdigest()


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_golden_bytes(method):
    prev, cur = golden_pair()
    data = encode_residual(cur, prev, method=method, network="golden")
    assert _stable_hash(data) == GOLDEN[method]
    assert decode_residual(data, prev).state.keys() == cur.keys()


# --- errors and hostile files ------------------------------------------------------------------


def test_mismatched_epochs_are_one_line_errors():
    prev, cur = _walk(8)
    bad_shape = {**prev, "conv.bias": prev["conv.bias"][:4]}
    bad_dtype = {**prev, "conv.bias": prev["conv.bias"].astype(np.float64)}
    missing = {k: v for k, v in prev.items() if k != "conv.bias"}
    for other, words in ((bad_shape, "shape"), (bad_dtype, "dtype"), (missing, "different")):
        with pytest.raises(UserError, match=words) as info:
            encode_residual(cur, other, method="ResEntropy")
        assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="method must be one of"):
        encode_residual(cur, prev, method="zstd")
    with pytest.raises(UserError, match="needs the previous epoch"):
        encode_residual(cur, None, method="ResEntropy")


def test_wrong_or_missing_reference_is_refused():
    prev, cur = _walk(9)
    data = encode_residual(cur, prev, method="ResEntropy16bits")
    with pytest.raises(UserError, match="not the one this file was encoded against"):
        decode_residual(data, cur)
    with pytest.raises(UserError, match="needs the previous epoch"):
        decode_residual(data, None)
    with pytest.raises(UserError, match="does not fit the file"):
        decode_residual(data, {"w": prev["conv.bias"]})
    with pytest.raises(FormatError, match="--mode residual_decode"):
        decode_model(data)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_truncation_and_bit_flips_are_format_errors(method):
    prev, cur = golden_pair()
    data = encode_residual(cur, prev, method=method)
    ref = prev if method != "Float16" else None
    for cut in range(0, len(data), max(1, len(data) // 40)):
        with pytest.raises(FormatError):
            decode_residual(data[:cut], ref)
    for pos in range(0, len(data), max(1, len(data) // 60)):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        with pytest.raises(UserError):
            decode_residual(bytes(flipped), ref)


def _craft(
    entry_codec: str, params: dict, chunks: tuple, prev: dict, *, dtype="float32", shape=(240,)
) -> bytes:
    from weightshare.codecs.residual import fingerprint

    meta = {
        "residual": {
            "method": "ResEntropy16bits",
            "lossless": False,
            "reference_sha256": fingerprint(prev),
        }
    }
    kinds = RESIDUAL_CODECS[entry_codec].chunk_kinds
    pairs = tuple(zip(kinds, chunks, strict=True))
    payload = TensorPayload("w", shape, dtype, entry_codec, params, pairs)
    return write_container("", [payload], meta)


def test_crafted_streams_give_clear_errors():
    """Files with valid checksums but inconsistent contents."""
    prev = {"w": np.zeros(240, dtype=np.float32)}
    good = encode_symbols(np.arange(240, dtype=np.int32) % 5)
    grid = {"step_exp": -15, "level_bits": 16}
    cases = [
        ("res_grid", {"step_exp": 99, "level_bits": 16}, (good, b"", b""), "step_exp"),
        ("res_grid", {"step_exp": -15}, (good, b"", b""), "level_bits"),
        ("res_grid", grid, (b"\x01", b"", b""), "symbol stream"),
        ("res_grid", grid, (b"\xff\xff\x05", b"", b""), "table of"),
        ("res_grid", grid, (good[:-4], b"", b""), "symbol stream"),
        ("res_grid", grid, (good + b"\x00" * 4, b"", b""), "symbol stream"),
        ("res_grid", grid, (good, b"\x00", b""), "raw bits"),
        ("res_grid", grid, (encode_symbols(np.full(240, 60, np.int32)), b"", b"1"), "escaped"),
        ("res_int", {}, (good, b"\x00\x00"), "raw bits"),
        ("res_fp16", {}, (b"\x00" * 10, b""), "float16"),
        ("fp16", {}, (b"\x00\x7e" * 240, b""), "escaped"),
        ("res_int", {"x": 1}, (good, b""), "unexpected params"),
    ]
    for codec, params, chunks, words in cases:
        data = _craft(codec, params, chunks, prev)
        with pytest.raises(FormatError, match=words):
            decode_residual(data, prev)
    ints = {"w": np.zeros(240, dtype=np.int64)}
    data = _craft("res_grid", grid, (good, b"", b""), ints, dtype="int64")
    with pytest.raises(FormatError, match="dtype"):
        decode_residual(data, ints)


@pytest.mark.parametrize("codec", sorted(RESIDUAL_CODECS))
def test_zero_dimension_beside_huge_ones_is_refused(codec):
    """0 elements, but the other dimensions multiply past 2**63: refused before numpy sees it."""
    prev = {"w": np.zeros(0, dtype=np.float32)}
    shape = (0,) + (2**40,) * 7
    chunks = tuple(b"" for _ in RESIDUAL_CODECS[codec].chunk_kinds)
    params = {"step_exp": -15, "level_bits": 16} if codec == "res_grid" else {}
    data = _craft(codec, params, chunks, prev, shape=shape)
    for reference in (prev, None):
        with pytest.raises(FormatError, match="spans more than 268435456 scalars") as info:
            decode_residual(data, reference)
        assert "\n" not in str(info.value)


def test_fuzz_findings_are_format_errors():
    """Found by a seeded fuzz of the manifest: a list as the method, a residual in Float16."""
    prev, cur = _walk(3, n=400)
    data = encode_residual(cur, prev, method="Float16")
    document, payload = split(data)
    document["meta"]["residual"]["method"] = ["Float16"]
    with pytest.raises(FormatError, match="not a residual file"):
        decode_residual(join(document, payload), None)
    document, payload = split(data)
    document["tensors"][0]["codec"] = "res_fp16"  # same chunk kinds as fp16
    message = (
        "corrupt residual file: tensor 'conv.weight' is a residual (res_fp16) but the file's "
        "method Float16 has no previous epoch"
    )
    for reference in (None, prev):
        with pytest.raises(FormatError) as info:
            decode_residual(join(document, payload), reference)
        assert str(info.value) == message


RESIDUAL_FIELDS = (
    "name",
    "shape",
    "dtype",
    "codec",
    "params",
    "chunks",
    "params.step_exp",
    "params.level_bits",
    "chunks.0.bytes",
    "chunks.1.bytes",
    "chunks.0.kind",
    "shape.0",
    "shape.-1",
)
RESIDUAL_VALUES = json_values | st.sampled_from(
    [*RESIDUAL_CODECS, *METHOD_NAMES, [0] + [2**40] * 7, [2**40] * 2, [-1], [1] * 9]
)


@pytest.fixture(scope="module")
def residual_files() -> _Files:
    prev, cur = _walk(3, n=400)
    return _Files({m: encode_residual(cur, prev, method=m) for m in METHOD_NAMES})


@pytest.mark.parametrize("method", METHOD_NAMES)
@settings(HYPOTHESIS, max_examples=30)
@given(data=st.data())
def test_crafted_residual_manifests_give_user_errors(residual_files, method, data):
    """Seeded fuzz of the manifest (tensor fields and meta.residual): a UserError or a decode,
    never another exception; the reference is the true one, none, or zeros of the declared
    shapes with a matching fingerprint (so the codecs themselves are reached)."""
    document, payload = split(residual_files[method])
    tensor = document["tensors"][data.draw(st.integers(0, len(document["tensors"]) - 1))]
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.integers(0, 5)) == 0:
            key = data.draw(st.sampled_from(["method", "lossless", "reference_sha256"]))
            document["meta"]["residual"][key] = data.draw(RESIDUAL_VALUES)
        else:
            _set(tensor, data.draw(st.sampled_from(RESIDUAL_FIELDS)), data.draw(RESIDUAL_VALUES))
    prev, _ = _walk(3, n=400)
    references = [None, prev]
    zeros = _zeros_like_manifest(document)
    if zeros is not None:
        references.append(zeros)
        if isinstance(document["meta"].get("residual"), dict):
            document["meta"]["residual"]["reference_sha256"] = fingerprint(zeros)
    for reference in references:
        try:
            decode_residual(join(document, payload), reference)
        except UserError as exc:
            assert str(exc) and "\n" not in str(exc)


def _zeros_like_manifest(document: dict) -> dict | None:
    """Zeros of every declared (valid, small) shape and dtype, or None."""
    from weightshare.codecs.container import DTYPES

    out = {}
    for entry in document["tensors"]:
        shape, dtype = entry.get("shape"), entry.get("dtype")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 4096 for d in shape
        ):
            return None
        if len(shape) > 8 or int(np.prod(shape, dtype=object)) > 1 << 16:
            return None
        if not isinstance(entry.get("name"), str) or not isinstance(dtype, str):
            return None
        if dtype not in DTYPES:
            return None
        out[entry["name"]] = np.zeros(shape, DTYPES[dtype].newbyteorder("="))
    return out


def test_a_plain_model_file_is_not_a_residual_file():
    from weightshare.codecs import encode_model

    data = encode_model({"w": np.zeros(4, np.float32)}, {}, network="x")
    with pytest.raises(FormatError, match="not a residual file"):
        decode_residual(data, None)
