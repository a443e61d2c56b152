"""Whole-model encode/decode: bit-exact round trips, fp16 codebooks, sizes, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from weightshare.codecs import (
    CODER_NAMES,
    DecodedModel,
    FormatError,
    decode_model,
    encode_model,
    original_bytes,
    round_codebook,
    tensor_sizes,
)
from weightshare.codecs.container import read_container
from weightshare.dse.clustering import ClusterCache, share_weights
from weightshare.dse.size import coded_bits, entropy_bits
from weightshare.errors import UserError
from weightshare.networks import NETWORKS, get_network
from weightshare.types import SharedWeights

CODEBOOK_DTYPES = ("fp32", "fp16")
PYTORCH_NETWORKS = [
    name for name, spec in NETWORKS.items() if getattr(spec, "framework", "pytorch") == "pytorch"
]


def bits(array: np.ndarray) -> np.ndarray:
    """The raw bytes of an array (so -0.0 != 0.0 and NaN payloads count)."""
    return np.ascontiguousarray(array).view(np.uint8)


def assert_identical(decoded: dict, expected: dict) -> None:
    assert list(decoded) == list(expected)
    for name, value in expected.items():
        assert decoded[name].dtype == value.dtype, name
        assert decoded[name].shape == value.shape, name
        np.testing.assert_array_equal(bits(decoded[name]), bits(value), err_msg=name)


def synthetic_state() -> tuple[dict[str, np.ndarray], dict[str, SharedWeights]]:
    rng = np.random.default_rng(0)
    conv = rng.laplace(0, 0.05, (8, 3, 3, 3)).astype(np.float32)
    fc = rng.normal(0, 0.1, (10, 40)).astype(np.float32)
    fc[0, :3] = [-0.0, 0.0, np.float32(1e-42)]  # signed zero and a subnormal
    state = {
        "conv.weight": conv,
        "conv.bias": rng.normal(size=8).astype(np.float32),
        "bn.running_var": rng.random(8).astype(np.float64),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "fc.weight": fc,
        "fc.mask": rng.random((10, 40)) < 0.5,
        "fc.half": rng.normal(size=(3, 2)).astype(np.float16),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "codes": np.arange(-4, 4, dtype=np.int8),
        "pixels": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "big_endian": np.arange(3, dtype=">i4"),
    }
    shared = {
        "conv.weight": share_weights(conv, 6, granularity="channel"),
        "fc.weight": share_weights(fc, 16),
    }
    return state, shared


def expected_state(state, shared, codebook_dtype: str) -> dict[str, np.ndarray]:
    out = {}
    for name, value in state.items():
        if name in shared:
            out[name] = round_codebook(shared[name], codebook_dtype, weights=value).dequantize()
        else:
            out[name] = value.astype(value.dtype.newbyteorder("="))
    return out


@pytest.mark.parametrize("codebook_dtype", CODEBOOK_DTYPES)
@pytest.mark.parametrize("coder", CODER_NAMES)
def test_synthetic_roundtrip_is_bit_exact(coder, codebook_dtype):
    state, shared = synthetic_state()
    data = encode_model(
        state, shared, network="toy", coder=coder, codebook_dtype=codebook_dtype, meta={"a": 1}
    )
    decoded = decode_model(data)
    assert isinstance(decoded, DecodedModel) and decoded.network == "toy"
    assert decoded.manifest.meta == {"a": 1}
    assert_identical(decoded.state, expected_state(state, shared, codebook_dtype))
    if codebook_dtype == "fp32":
        for name, sw in shared.items():
            np.testing.assert_array_equal(bits(decoded.state[name]), bits(sw.dequantize()))
    assert all(v.flags.writeable for v in decoded.state.values())


def test_fp16_codebook_is_the_rounded_codebook_and_smaller():
    state, shared = synthetic_state()
    f32 = encode_model(state, shared, network="toy", codebook_dtype="fp32")
    f16 = encode_model(state, shared, network="toy", codebook_dtype="fp16")
    saved = sum(
        a.codebook_bytes - b.codebook_bytes
        for a, b in zip(
            tensor_sizes(decode_model(f32).manifest),
            tensor_sizes(decode_model(f16).manifest),
            strict=True,
        )
    )
    assert saved == 2 * sum(sw.codebook.size for sw in shared.values())
    decoded = decode_model(f16).state["fc.weight"]
    rounded = shared["fc.weight"].codebook.astype(np.float16).astype(np.float32)
    assert set(np.unique(decoded)) <= set(rounded.ravel())


def test_round_codebook():
    weights = np.random.default_rng(1).normal(0, 1, (4, 50)).astype(np.float32)
    sw = share_weights(weights, 8, granularity="channel")
    assert round_codebook(sw, "fp32", weights=weights) is sw
    r = round_codebook(sw, "fp16", weights=weights)
    np.testing.assert_array_equal(r.codebook, sw.codebook.astype(np.float16).astype(np.float32))
    assert r.indices is sw.indices and (r.k, r.granularity, r.method) == (8, "channel", sw.method)
    direct = float(np.square(weights.astype(np.float64) - r.dequantize()).sum())
    assert r.inertia == direct and r.inertia >= sw.inertia * 0.999
    with pytest.raises(UserError, match="fp16's range"):
        round_codebook(
            share_weights(np.array([1e5, -1.0], np.float32), 2),
            "fp16",
            weights=np.array([1e5, -1.0], np.float32),
        )
    with pytest.raises(UserError, match="indices' shape"):
        round_codebook(sw, "fp16", weights=weights[:2])
    with pytest.raises(UserError, match="codebook_dtype must be one of"):
        round_codebook(sw, "bf16", weights=weights)


# --- every registry network, every coder -----------------------------------------------------


@pytest.fixture(scope="module")
def networks():
    """name -> (state, {granularity: ClusterCache}) of a seeded (untrained) instance."""
    out = {}
    for name in PYTORCH_NETWORKS:
        torch.manual_seed(0)
        model = get_network(name).build()
        state = {k: v.numpy() for k, v in model.state_dict().items()}
        layers = [
            n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
        ]
        caches = {
            g: ClusterCache({n: state[f"{n}.weight"] for n in layers}, granularity=g)
            for g in ("layer", "channel")
        }
        out[name] = (state, layers, caches)
    return out


@pytest.mark.parametrize("granularity", ["layer", "channel"])
@pytest.mark.parametrize("coder", CODER_NAMES)
@pytest.mark.parametrize("network", PYTORCH_NETWORKS)
def test_every_network_roundtrips_bit_exact(networks, network, coder, granularity):
    state, layers, caches = networks[network]
    ks = (2, 5, 16, 64)
    shared = {
        f"{n}.weight": caches[granularity].get(n, ks[i % len(ks)]) for i, n in enumerate(layers)
    }
    data = encode_model(state, shared, network=network, coder=coder)
    decoded = decode_model(data)
    expected = {k: shared[k].dequantize() if k in shared else v for k, v in state.items()}
    assert_identical(decoded.state, expected)
    # the per-layer objective is exactly what the file spends on each layer's chunks
    manifest, _ = read_container(data)
    for entry in manifest.tensors:
        if entry.name in shared:
            assert coded_bits(shared[entry.name], coder=coder) == 8 * entry.coded_bytes
    assert original_bytes(state) == sum(s.original_bytes for s in tensor_sizes(manifest))


def test_ans_file_is_close_to_the_entropy_estimate(networks):
    _, layers, caches = networks["resnet20_fashionmnist"]
    shared = {f"{n}.weight": caches["layer"].get(n, 16) for n in layers}
    coded = sum(coded_bits(sw, coder="ans") for sw in shared.values())
    estimate = sum(entropy_bits(sw) for sw in shared.values())
    assert estimate <= coded <= 1.01 * estimate


def test_coded_bits_orders_the_coders():
    weights = np.random.default_rng(2).laplace(0, 0.05, (120, 400)).astype(np.float32)
    sw = share_weights(weights, 16)
    ans, huff, fixed = (coded_bits(sw, coder=c) for c in CODER_NAMES)
    assert ans < huff <= fixed
    assert fixed == 8 * (16 * 4) + 4 * sw.indices.size
    assert coded_bits(sw, coder="ans", codebook_dtype="fp16") == ans - 16 * 16
    with pytest.raises(UserError, match="coder must be one of"):
        coded_bits(sw, coder="lzma")


# --- input checks ---------------------------------------------------------------------------


def test_encode_rejects_bad_arguments():
    state, shared = synthetic_state()
    with pytest.raises(UserError, match="coder must be one of"):
        encode_model(state, shared, network="toy", coder="zip")
    with pytest.raises(UserError, match="codebook_dtype must be one of"):
        encode_model(state, shared, network="toy", codebook_dtype="int8")
    with pytest.raises(UserError, match="network must be a non-empty string"):
        encode_model(state, shared, network="")
    with pytest.raises(UserError, match="tensor 'nope', which is not in the state dict"):
        encode_model(state, {**shared, "nope": shared["fc.weight"]}, network="toy")
    with pytest.raises(UserError, match="must match"):
        encode_model(state, {"conv.bias": shared["fc.weight"]}, network="toy")
    with pytest.raises(UserError, match="must be a SharedWeights"):
        encode_model(state, {"fc.weight": state["fc.weight"]}, network="toy")
    with pytest.raises(UserError, match="dtype complex64"):
        encode_model({"z": np.zeros(2, np.complex64)}, {}, network="toy")
    with pytest.raises(UserError, match="tensor names must be strings"):
        encode_model({3: np.zeros(2)}, {}, network="toy")
    wide = SharedWeights(
        np.zeros((1, 8), np.float32), np.zeros((2, 2), np.uint8), 0.0, 8, "layer", "linear"
    )
    with pytest.raises(UserError, match="k_eff must not exceed"):
        encode_model({"w": np.zeros((2, 2), np.float32)}, {"w": wide}, network="toy")
    loud = np.array([[1e5, -1.0]], np.float32)
    with pytest.raises(UserError, match="fp16's range"):
        encode_model(
            {"w": loud}, {"w": share_weights(loud, 2)}, network="toy", codebook_dtype="fp16"
        )


def test_decode_limits_declared_elements():
    state, shared = synthetic_state()
    data = encode_model(state, shared, network="toy")
    total = sum(np.asarray(v).size for v in state.values())
    assert len(decode_model(data, max_elements=total).state) == len(state)
    with pytest.raises(FormatError, match="max_elements"):
        decode_model(data, max_elements=total - 1)


def test_decode_names_the_tensor_of_a_bad_stream():
    state, shared = synthetic_state()
    data = bytearray(encode_model(state, shared, network="toy", coder="fixed"))
    manifest, chunks = read_container(bytes(data))
    # not reachable through checksums; decode the chunk directly with a wrong shape instead
    from weightshare.codecs.tensors import decode_tensor

    entry = next(t for t in manifest.tensors if t.name == "fc.weight")
    index = [t.name for t in manifest.tensors].index("fc.weight")
    broken = (chunks[index][0], chunks[index][1][:-1])
    with pytest.raises(FormatError, match=r"tensor 'fc\.weight': corrupt fixed index stream"):
        decode_tensor(entry, broken)


def test_the_sizes_of_a_pruned_tensor_add_up_to_its_stored_bytes():
    rng = np.random.default_rng(5)
    state = {
        "a.weight": rng.standard_normal((16, 32)).astype(np.float32),
        "b.weight": rng.standard_normal((8, 32)).astype(np.float32),
        "b.bias": rng.standard_normal(8).astype(np.float32),
    }
    cache = ClusterCache({"a": state["a.weight"], "b": state["b.weight"]}, seed=0)
    shared = {"a.weight": cache.choice("a", "4@0.75"), "b.weight": cache.choice("b", 8)}
    data = encode_model(state, shared, network="net")
    sizes = {s.name: s for s in tensor_sizes(decode_model(data).manifest)}
    pruned, plain, raw = sizes["a.weight"], sizes["b.weight"], sizes["b.bias"]
    assert pruned.codec == "sparse_shared" and pruned.position_bytes > 0
    assert pruned.index_bytes + pruned.codebook_bytes + pruned.position_bytes == (
        pruned.stored_bytes
    )
    assert plain.position_bytes == 0
    assert plain.index_bytes + plain.codebook_bytes == plain.stored_bytes
    assert (raw.position_bytes, raw.index_bytes, raw.stored_bytes) == (0, 0, 32)
