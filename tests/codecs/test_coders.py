"""Index coders: the conformance suite for each, then what is specific to each coder."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.codecs.conformance import IndexCoderConformance, entropy_bits, skewed
from weightshare.codecs import CODER_NAMES, decode_indices, encode_indices, get_coder
from weightshare.codecs import huffman as huffman_module
from weightshare.codecs.ans import SCOPE_GROUP, SCOPE_LAYER
from weightshare.codecs.huffman import (
    MAX_CODE_LENGTH,
    _decode_sequential,
    _DecodeTable,
    canonical_codes,
    code_lengths,
    codeword_starts,
)
from weightshare.errors import UserError


class TestAnsConformance(IndexCoderConformance):
    coder = "ans"


class TestHuffmanConformance(IndexCoderConformance):
    coder = "huffman"


class TestFixedConformance(IndexCoderConformance):
    coder = "fixed"


def test_registry_names():
    """(The table itself is pinned once, in tests/codecs/test_registry.py.)"""
    assert [get_coder(name).name for name in CODER_NAMES] == list(CODER_NAMES)
    with pytest.raises(UserError, match=re.escape(f"coder must be one of {CODER_NAMES}")):
        get_coder("zstd")


# --- ans ------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [4, 16, 64])
def test_ans_is_within_half_a_percent_of_the_entropy(k):
    indices = skewed((1, 200_000), k, 0.5, seed=k)
    data = encode_indices(indices, k, "ans")
    assert 8 * len(data) <= 1.005 * entropy_bits(indices, k)


def test_ans_picks_per_group_models_when_groups_differ():
    rng = np.random.default_rng(0)
    indices = np.stack([rng.choice([g, g + 8], size=2000) for g in range(8)]).astype(np.uint8)
    data = encode_indices(indices, 16, "ans")
    assert data[0] == SCOPE_GROUP
    per_group = sum(entropy_bits(row, 16) for row in indices)
    assert 8 * len(data) < 0.6 * entropy_bits(indices, 16)  # far below the layer-wide model
    assert 8 * len(data) <= per_group + 8 * 15 * 12 + 8 * 64  # entropy + tables + states


def test_ans_keeps_one_model_when_groups_look_alike():
    data = encode_indices(skewed((8, 2000), 16, 0.5, seed=1), 16, "ans")
    assert data[0] == SCOPE_LAYER


def test_ans_rejects_counts_beyond_the_stream():
    indices = skewed((1, 100), 4, 1.0, seed=2)
    data = bytearray(encode_indices(indices, 4, "ans"))
    data[1] = 40  # count width: the table now claims more symbols than there are
    from weightshare.codecs import FormatError

    with pytest.raises(FormatError):
        decode_indices(bytes(data), 1, 100, 4, "ans")


# --- huffman --------------------------------------------------------------------------------


def test_huffman_lengths_of_the_textbook_example():
    # CLRS 16.3: frequencies a..f = 45 13 12 16 9 5 -> lengths 1 3 3 3 4 4, cost 224
    lengths = code_lengths(np.array([45, 13, 12, 16, 9, 5]))
    assert lengths.tolist() == [1, 3, 3, 3, 4, 4]
    codes, order = canonical_codes(lengths)
    assert order.tolist() == [0, 1, 2, 3, 4, 5]
    assert [format(int(c), f"0{n}b") for c, n in zip(codes, lengths, strict=True)] == [
        "0",
        "100",
        "101",
        "110",
        "1110",
        "1111",
    ]


def test_huffman_lengths_are_limited_and_complete():
    fibonacci = [1, 1]
    while len(fibonacci) < 40:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    lengths = code_lengths(np.array(fibonacci))
    assert lengths.max() == MAX_CODE_LENGTH
    assert sum(2.0 ** -int(x) for x in lengths) == 1.0
    # the most frequent symbols keep the shortest codes
    assert np.all(np.diff(lengths[::-1].astype(int)) >= 0)


def test_huffman_lone_symbol_costs_one_bit():
    assert code_lengths(np.array([0, 9, 0])).tolist() == [0, 1, 0]
    data = encode_indices(np.full((1, 800), 1, dtype=np.uint8), 3, "huffman")
    assert len(data) == 1 + 2 + 100  # pad byte, 3 x 5-bit lengths, 800 bits


def _stream(indices: np.ndarray, k: int):
    data = encode_indices(indices, k, "huffman")
    table_bytes = (5 * k + 7) // 8
    lengths = np.frombuffer(data, dtype=np.uint8)
    stream = lengths[1 + table_bytes :]
    nbits = 8 * stream.size - data[0]
    from weightshare.codecs.bitpack import unpack_bits

    table = _DecodeTable(unpack_bits(data[1 : 1 + table_bytes], 5, k))
    return stream, nbits, table


@pytest.mark.parametrize("block_bits", [64, 256, 1000])
@pytest.mark.parametrize("rounds", [0, 1, 6])
@pytest.mark.parametrize(("k", "alpha"), [(8, 100.0), (16, 0.3), (5, 1.0), (200, 0.2)])
def test_huffman_lane_decoder_matches_sequential_decoding(
    monkeypatch, block_bits, rounds, k, alpha
):
    monkeypatch.setattr(huffman_module, "BLOCK_BITS", block_bits)
    monkeypatch.setattr(huffman_module, "MAX_ROUNDS", rounds)
    indices = skewed((1, 20_000), k, alpha, seed=k)
    stream, nbits, table = _stream(indices, k)
    reference = np.zeros(nbits, dtype=bool)
    assert _decode_sequential(stream, nbits, table, 0, reference) == nbits
    np.testing.assert_array_equal(codeword_starts(stream, nbits, table), np.flatnonzero(reference))
    decoded = decode_indices(encode_indices(indices, k, "huffman"), 1, 20_000, k, "huffman")
    np.testing.assert_array_equal(decoded, indices)


def test_huffman_equal_length_codes_that_never_resynchronise():
    # k = 8 uniform: every code has 3 bits; lanes must start on multiples of 3
    indices = (np.arange(30_000) * 5 % 8).astype(np.uint8)[None, :]
    data = encode_indices(indices, 8, "huffman")
    assert len(data) == 1 + 5 + 30_000 * 3 // 8
    np.testing.assert_array_equal(decode_indices(data, 1, 30_000, 8, "huffman"), indices)


def test_huffman_rejects_an_over_full_code_table():
    data = bytearray(encode_indices(skewed((1, 100), 4, 1.0, seed=3), 4, "huffman"))
    data[1:4] = bytes([0b00001000, 0b01000010, 0b00010000])  # four codes of length 1
    from weightshare.codecs import FormatError

    with pytest.raises(FormatError, match="code-length table"):
        decode_indices(bytes(data), 1, 100, 4, "huffman")


# --- fixed ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "width"), [(2, 1), (3, 2), (4, 2), (5, 3), (16, 4), (17, 5)])
def test_fixed_uses_ceil_log2_k_bits(k, width):
    indices = (np.arange(1001) % k).astype(np.uint8)[None, :]
    assert len(encode_indices(indices, k, "fixed")) == (1001 * width + 7) // 8


def test_fixed_rejects_indices_beyond_k():
    data = encode_indices(np.array([[0, 1, 2, 4]], dtype=np.uint8), 5, "fixed")
    forged = bytes([data[0] | 0b11100000]) + data[1:]  # first index 7 >= 5
    from weightshare.codecs import FormatError

    with pytest.raises(FormatError, match="index >= k"):
        decode_indices(forged, 1, 4, 5, "fixed")
