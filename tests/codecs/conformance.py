"""The index-coder conformance suite: every registered coder runs it (see test_coders.py).

Subclass :class:`IndexCoderConformance` and set ``coder`` to a name in ``CODER_NAMES``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from weightshare.codecs import FormatError, decode_indices, encode_indices
from weightshare.codecs.coders import index_dtype
from weightshare.errors import UserError

# the suite's methods run on one instance per coder class; they keep no state on self
_SHARED_SUITE = [HealthCheck.differing_executors, HealthCheck.too_slow]


def entropy_bits(symbols: np.ndarray, k: int) -> float:
    """Order-0 empirical entropy of all symbols together, in bits (n * H)."""
    counts = np.bincount(symbols.reshape(-1).astype(np.int64), minlength=k)
    n = counts.sum()
    used = counts[counts > 0]
    return float(np.sum(used * np.log2(n / used)))


def skewed(shape: tuple[int, int], k: int, alpha: float, seed: int) -> np.ndarray:
    """Indices drawn from a Dirichlet(alpha)-distributed categorical: ``index_dtype(k)``."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, alpha))
    return rng.choice(k, size=shape, p=p).astype(index_dtype(k))


@st.composite
def index_arrays(draw, max_k: int = 300):
    """(indices (G, n), k) with k >= 1 and values in [0, k)."""
    k = draw(st.integers(1, max_k))
    groups = draw(st.integers(1, 4))
    n = draw(st.integers(1, 64))
    top = draw(st.integers(0, k - 1))  # often a sub-alphabet, sometimes one symbol
    array = draw(hnp.arrays(index_dtype(k), (groups, n), elements=st.integers(0, top)))
    return array, k


class IndexCoderConformance:
    """Round trips, edge alphabets, size bounds, determinism and input checks."""

    coder: str = ""

    def roundtrip(self, indices: np.ndarray, k: int) -> bytes:
        data = encode_indices(indices, k, self.coder)
        decoded = decode_indices(data, indices.shape[0], indices.shape[1], k, self.coder)
        assert decoded.dtype == index_dtype(k)
        assert decoded.shape == indices.shape
        np.testing.assert_array_equal(decoded, indices)
        return data

    @settings(max_examples=150, deadline=None, suppress_health_check=_SHARED_SUITE)
    @given(case=index_arrays())
    def test_roundtrip_random(self, case):
        indices, k = case
        self.roundtrip(indices, k)

    @pytest.mark.parametrize(
        ("k", "alpha"), [(2, 1.0), (3, 0.5), (16, 1.0), (16, 0.05), (256, 1.0)]
    )
    @pytest.mark.parametrize("groups", [1, 8])
    def test_roundtrip_distributions(self, k, alpha, groups):
        self.roundtrip(skewed((groups, 5000), k, alpha, seed=k), k)

    def test_k1_is_free(self):
        indices = np.zeros((3, 50), dtype=np.uint8)
        assert self.roundtrip(indices, 1) == b""

    @pytest.mark.parametrize("symbol", [0, 7, 15])
    def test_single_symbol(self, symbol):
        indices = np.full((1, 1000), symbol, dtype=np.uint8)
        data = self.roundtrip(indices, 16)
        assert len(data) <= 1000 / 8 * 4 + 64  # never worse than fixed length

    def test_one_dominant_symbol(self):
        indices = np.zeros((1, 20000), dtype=np.uint8)
        indices[0, ::997] = 5
        self.roundtrip(indices, 8)

    @pytest.mark.parametrize("k", [255, 256, 257, 4096, 65536])
    def test_alphabet_boundaries(self, k):
        rng = np.random.default_rng(k)
        indices = rng.integers(0, k, size=(2, 700)).astype(index_dtype(k))
        indices[0, 0], indices[1, -1] = 0, k - 1
        self.roundtrip(indices, k)

    def test_channel_groups_with_different_alphabets(self):
        # group g uses only symbols {g, g + 8}: channel-granularity-like index streams
        rng = np.random.default_rng(1)
        indices = np.stack([rng.choice([g, g + 8], size=300) for g in range(8)]).astype(np.uint8)
        self.roundtrip(indices, 16)

    def test_single_index(self):
        self.roundtrip(np.array([[3]], dtype=np.uint8), 4)

    def test_long_stream(self):
        self.roundtrip(skewed((1, 300_000), 32, 0.3, seed=2), 32)

    def test_size_bounds(self):
        indices = skewed((1, 50_000), 16, 0.5, seed=3)
        data = encode_indices(indices, 16, self.coder)
        bits = 8 * len(data)
        fixed = 4 * indices.size
        if self.coder == "fixed":
            assert bits == fixed
        else:
            h = entropy_bits(indices, 16)
            assert h - 64 <= bits <= min(h + indices.size + 512, fixed + 512)

    def test_deterministic(self):
        indices = skewed((4, 2000), 16, 0.5, seed=4)
        assert encode_indices(indices, 16, self.coder) == encode_indices(
            indices.copy(), 16, self.coder
        )

    def test_truncated_stream_is_a_format_error(self):
        indices = skewed((1, 4000), 16, 0.5, seed=5)
        data = encode_indices(indices, 16, self.coder)
        for cut in (len(data) - 1, len(data) // 2, 0):
            with pytest.raises(FormatError):
                decode_indices(data[:cut], 1, 4000, 16, self.coder)

    def test_extra_bytes_are_a_format_error(self):
        indices = skewed((1, 4000), 16, 0.5, seed=6)
        data = encode_indices(indices, 16, self.coder)
        with pytest.raises(FormatError):
            decode_indices(data + b"\0\0\0\1", 1, 4000, 16, self.coder)

    @settings(max_examples=100, deadline=None, suppress_health_check=_SHARED_SUITE)
    @given(junk=st.binary(max_size=200), k=st.integers(2, 300), n=st.integers(1, 500))
    def test_junk_never_crashes(self, junk, k, n):
        try:
            out = decode_indices(junk, 1, n, k, self.coder)
        except FormatError:
            return
        assert out.shape == (1, n) and int(out.max()) < k

    def test_rejects_invalid_input(self):
        with pytest.raises(UserError, match="indices must lie in"):
            encode_indices(np.array([[0, 4]], dtype=np.uint8), 4, self.coder)
        with pytest.raises(UserError, match="2-D"):
            encode_indices(np.array([0, 1], dtype=np.uint8), 4, self.coder)
        with pytest.raises(UserError, match="integer"):
            encode_indices(np.array([[0.0, 1.0]]), 4, self.coder)
        with pytest.raises(UserError, match="k must be an int"):
            encode_indices(np.array([[0]], dtype=np.uint8), 0, self.coder)
