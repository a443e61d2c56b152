"""Tests for weightshare.dse.size: fixed-length and entropy size models."""

import math
from fractions import Fraction

import numpy as np
import pytest

from weightshare.codecs.sparse import encode_sparse_shared
from weightshare.dse.clustering import ClusterCache, share_weights
from weightshare.dse.size import (
    LayerSize,
    coded_bits,
    compression_ratio_entropy,
    compression_ratio_fixed,
    compression_ratio_model,
    entropy_bits,
    fixed_bits,
    index_bits,
    layer_fixed_bits,
    pruned_fixed_bits,
)
from weightshare.errors import UserError

# LeNet-5: conv1 6x1x5x5, conv2 16x6x5x5, fc1 120x400, fc2 84x120, fc3 10x84
LENET5_WEIGHTS = {"conv1": 150, "conv2": 2400, "fc1": 48000, "fc2": 10080, "fc3": 840}
LENET5_BIASES = 6 + 16 + 120 + 84 + 10


def lenet5(k: int) -> list[LayerSize]:
    return [LayerSize(name, n, k) for name, n in LENET5_WEIGHTS.items()]


@pytest.mark.parametrize(
    ("k", "bits"),
    [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (16, 4), (17, 5), (256, 8), (257, 9), (65536, 16)],
)
def test_index_bits_is_ceil_log2(k, bits):
    assert index_bits(k) == bits


@pytest.mark.parametrize(
    ("layer", "bits"),
    [
        (LayerSize("fc", 1000, 16), 4 * 1000 + 32 * 16),
        (LayerSize("fc", 1000, 17), 5 * 1000 + 32 * 17),
        (LayerSize("fc", 1000, 1), 32),
        (LayerSize("fc", 1000, 2, codebook_bits=16), 1000 + 16 * 2),
        (LayerSize("conv", 150, 17, groups=6), 5 * 150 + 32 * 17 * 6),
    ],
)
def test_fixed_bits(layer, bits):
    assert fixed_bits(layer) == bits


def test_lenet5_fixed_ratio_at_k16():
    # 61470 weights: 4-bit indices plus five 16-entry fp32 codebooks
    expected = Fraction(32 * 61470, 4 * 61470 + 5 * 16 * 32)
    assert compression_ratio_fixed(lenet5(16)) == float(expected)


def test_fixed_ratio_is_the_weighted_harmonic_mean_of_layer_ratios():
    layers = [LayerSize("a", 100, 2), LayerSize("b", 10_000, 256)]
    expected = Fraction(32 * 10_100, (1 * 100 + 32 * 2) + (8 * 10_000 + 32 * 256))
    assert compression_ratio_fixed(layers) == float(expected)


def test_lenet5_model_ratio_counts_biases_at_32_bits():
    expected = Fraction(32 * (61470 + LENET5_BIASES), 4 * 61470 + 5 * 16 * 32 + 32 * LENET5_BIASES)
    assert compression_ratio_model(lenet5(16), LENET5_BIASES) == float(expected)
    assert compression_ratio_model(lenet5(16), 0) == compression_ratio_fixed(lenet5(16))


def test_entropy_bits_of_a_uniform_stream():
    shared = share_weights(np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32), 2)
    assert shared.indices.tolist() == [0, 0, 1, 1]
    assert entropy_bits(shared) == 4 * 1.0 + 2 * 32  # H = 1 bit per index


def test_entropy_bits_of_a_skewed_stream():
    shared = share_weights(np.array([5.0, 5.0, 5.0, 7.0], dtype=np.float32), 2)
    entropy = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert entropy_bits(shared, codebook_bits=16) == pytest.approx(4 * entropy + 2 * 16, rel=1e-12)


def test_entropy_bits_per_channel_skips_padding():
    weights = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    shared = share_weights(weights, 2, granularity="channel")
    assert shared.codebook.tolist() == [[1.0, 1.0], [1.5, 3.5]]  # row 0 is padded
    # row 0: one symbol, 0 bits + 1 entry; row 1: indices 0,0,1,1, 4 bits + 2 entries
    assert entropy_bits(shared) == 0 + 32 + 4 + 2 * 32


def test_entropy_ratio():
    a = share_weights(np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32), 2)  # 68 bits
    b = share_weights(np.full(8, 3.0, dtype=np.float32), 4)  # 0 + 32 bits
    assert compression_ratio_entropy([a, b]) == float(Fraction(32 * 12, 68 + 32))


def test_entropy_estimate_never_exceeds_fixed_length_indices():
    weights = np.random.default_rng(0).laplace(0.0, 0.02, 20_000).astype(np.float32)
    shared = share_weights(weights, 16)
    fixed = fixed_bits(LayerSize("w", weights.size, 16))
    assert entropy_bits(shared) < fixed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_weights": 0}, "n_weights must be an int >= 1; got 0"),
        ({"k": 0}, "k must be an int in [1, 65536]; got 0"),
        ({"k": 65537}, "k must be an int in [1, 65536]; got 65537"),
        ({"groups": 0}, "groups must be an int >= 1; got 0"),
        ({"codebook_bits": 0}, "codebook_bits must be an int >= 1; got 0"),
        ({"n_weights": 10.0}, "n_weights must be an int >= 1; got 10.0"),
    ],
)
def test_layer_size_rejects_bad_fields(kwargs, message):
    with pytest.raises(UserError) as excinfo:
        LayerSize(**{"name": "fc", "n_weights": 10, "k": 4, **kwargs})
    assert str(excinfo.value) == message


def test_ratios_reject_bad_arguments():
    with pytest.raises(UserError, match=r"^layers must hold at least 1 layer; got 0$"):
        compression_ratio_fixed([])
    with pytest.raises(UserError, match=r"^n_unclustered must be an int >= 0; got -1$"):
        compression_ratio_model(lenet5(4), -1)
    with pytest.raises(UserError, match=r"^shared must hold at least 1 layer; got 0$"):
        compression_ratio_entropy([])
    with pytest.raises(UserError, match=r"^k must be an int in \[1, 65536\]; got 0$"):
        index_bits(0)


def test_a_pruned_layer_costs_its_survivors_indices_the_codebook_and_a_bitmap():
    # 30 survivors of 100 weights, k = 4: 2-bit indices, 4 fp32 values, 100 bitmap bits
    assert pruned_fixed_bits(LayerSize("fc", 100, 4), 30) == 2 * 30 + 32 * 4 + 100 == 288
    w = np.random.default_rng(0).standard_normal((10, 10)).astype(np.float32)
    sparse = ClusterCache({"fc": w}, seed=0).pruned("fc", 4, 0.7)
    assert int(sparse.mask.sum()) == 30
    assert layer_fixed_bits("fc", sparse) == 288
    assert layer_fixed_bits("fc", share_weights(w, 4)) == fixed_bits(LayerSize("fc", 100, 4))
    with pytest.raises(UserError, match="nnz"):
        pruned_fixed_bits(LayerSize("fc", 100, 4), 101)


def test_coded_bits_of_a_pruned_layer_are_its_three_chunks():
    w = np.random.default_rng(1).standard_normal((16, 64)).astype(np.float32)
    sparse = ClusterCache({"fc": w}, seed=0).pruned("fc", 8, 0.8)
    payload = encode_sparse_shared("fc", sparse, coder="ans", codebook_dtype="fp32")
    assert [kind for kind, _ in payload.chunks] == ["codebook", "positions", "indices"]
    assert coded_bits(sparse) == 8 * sum(len(data) for _, data in payload.chunks)
    # fewer bits than the same k without pruning: 205 survivors' indices + positions
    assert coded_bits(sparse) < coded_bits(share_weights(w, 8))
