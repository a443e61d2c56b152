"""Tests for weightshare.dse.clustering: 1-D k-means weight sharing."""

import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from weightshare.dse import clustering
from weightshare.dse.clustering import (
    GRANULARITIES,
    INIT_METHODS,
    ClusterCache,
    SharedWeights,
    kmeans_1d,
    share_weights,
)
from weightshare.errors import UserError
from weightshare.pruning.magnitude import sparsity_mask

ALL_INITS = (*INIT_METHODS, "best")


def laplace(n: int, seed: int = 0) -> np.ndarray:
    """Conv-like weights: float32, shape (n,)."""
    return np.random.default_rng(seed).laplace(0.0, 0.02, n).astype(np.float32)


def direct_inertia(weights: np.ndarray, shared: SharedWeights) -> float:
    residual = weights.astype(np.float64) - shared.dequantize().astype(np.float64)
    return float(np.square(residual).sum())


# --- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("init", ALL_INITS)
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_same_input_same_output_bit_for_bit(init, granularity):
    weights = laplace(8 * 300, seed=3).reshape(8, 300)
    first = share_weights(weights, 16, granularity=granularity, init=init, seed=7)
    second = share_weights(weights.copy(), 16, granularity=granularity, init=init, seed=7)
    assert first.codebook.tobytes() == second.codebook.tobytes()
    assert first.indices.tobytes() == second.indices.tobytes()
    assert first.inertia == second.inertia
    assert first.method == second.method


def test_global_numpy_rng_is_neither_used_nor_consumed():
    x = laplace(2000)
    np.random.seed(1)
    state = np.random.get_state()
    first = kmeans_1d(x, 8, init="kmeans++", seed=5)
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(state, after, strict=True))
    np.random.seed(2)
    second = kmeans_1d(x, 8, init="kmeans++", seed=5)
    assert np.array_equal(first[0], second[0])


def test_kmeanspp_seed_changes_the_draw():
    x = laplace(2000)
    draws = {kmeans_1d(x, 8, init="kmeans++", max_iter=0, seed=s)[0].tobytes() for s in range(4)}
    assert len(draws) > 1


# --- Lloyd quality ---------------------------------------------------------------------------


@pytest.mark.parametrize("dist", ["normal", "laplace"])
@pytest.mark.parametrize("k", [2, 5, 16, 64])
@pytest.mark.parametrize("init", ["linear", "quantile"])
def test_lloyd_matches_sklearn_from_the_same_init(dist, k, init):
    kmeans_cls = pytest.importorskip("sklearn.cluster").KMeans
    threadpool_limits = pytest.importorskip("threadpoolctl").threadpool_limits
    x = getattr(np.random.default_rng(k), dist)(0.0, 1.0, 3000)
    if init == "linear":
        start = np.linspace(x.min(), x.max(), k)
    else:
        start = np.quantile(x, (np.arange(k) + 0.5) / k)
    reference = kmeans_cls(
        n_clusters=k, init=start.reshape(-1, 1), n_init=1, tol=0.0, max_iter=300, algorithm="lloyd"
    )
    with threadpool_limits(1):  # OpenMP threads only contend on small inputs
        reference.fit(x.reshape(-1, 1))
    _, _, inertia, method = kmeans_1d(x, k, init=init)
    assert method == init
    assert inertia <= reference.inertia_ * (1 + 1e-6)


def test_converged_centroids_are_the_means_of_their_clusters():
    x = np.random.default_rng(0).normal(size=2000)
    centroids, labels, _, _ = kmeans_1d(x, 6, init="quantile")
    means = np.array([x[labels == j].mean() for j in range(centroids.size)])
    np.testing.assert_allclose(centroids, means, rtol=1e-6)


def test_no_n_by_k_distance_matrix():
    n, k = 100_000, 256
    x = laplace(n)
    tracemalloc.start()
    try:
        share_weights(x, k)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 8 * n  # an (n, k) float64 matrix alone would be 8 * n * k bytes


# --- initialisations -------------------------------------------------------------------------


def test_linear_init_is_linspace_of_min_max():
    x = np.array([0.0, 0.9, 1.1, 2.0, 3.0])
    centroids, _, _, method = kmeans_1d(x, 4, init="linear", max_iter=0)
    assert centroids.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert method == "linear"


def test_quantile_init_uses_mid_bin_quantiles():
    centroids, _, _, _ = kmeans_1d(np.arange(8.0), 4, init="quantile", max_iter=0)
    assert centroids.tolist() == [0.875, 2.625, 4.375, 6.125]


def test_kmeanspp_init_draws_distinct_data_points():
    x = laplace(1000)
    centroids, _, _, method = kmeans_1d(x, 10, init="kmeans++", max_iter=0, seed=3)
    assert method == "kmeans++"
    assert centroids.size == 10
    assert np.isin(centroids, x).all()


def test_kmeanspp_samples_proportionally_to_squared_distance(monkeypatch):
    monkeypatch.setattr(clustering, "KMEANSPP_RESTARTS", 1)
    x = np.array([0.0, 1.0, 3.0])
    draws = [tuple(kmeans_1d(x, 2, init="kmeans++", max_iter=0, seed=s)[0]) for s in range(1000)]
    # first centre uniform, second with probability D(x)**2 / sum D**2
    expected = {
        (0.0, 1.0): (1 / 10 + 1 / 5) / 3,
        (0.0, 3.0): (9 / 10 + 9 / 13) / 3,
        (1.0, 3.0): (4 / 5 + 4 / 13) / 3,
    }
    for pair, probability in expected.items():
        assert draws.count(pair) / len(draws) == pytest.approx(probability, abs=0.05)


def test_kmeanspp_keeps_the_best_restart(monkeypatch):
    x = laplace(2000)
    restarts = [kmeans_1d(x, 8, init="kmeans++", seed=s)[2] for s in range(5)]
    monkeypatch.setattr(clustering, "KMEANSPP_RESTARTS", 1)
    single = [kmeans_1d(x, 8, init="kmeans++", seed=s)[2] for s in range(5)]
    assert all(r <= s for r, s in zip(restarts, single, strict=True))
    assert any(r < s for r, s in zip(restarts, single, strict=True))


def test_weight_on_a_midpoint_goes_to_the_lower_centroid():
    centroids, labels, inertia, _ = kmeans_1d(
        np.array([0.0, 0.5, 1.0]), 2, init="linear", max_iter=0
    )
    assert centroids.tolist() == [0.0, 1.0]
    assert labels.tolist() == [0, 0, 1]
    assert inertia == 0.25


def test_tol_stops_early():
    x = laplace(5000)
    after_one_update = kmeans_1d(x, 16, init="linear", max_iter=1)
    with_huge_tol = kmeans_1d(x, 16, init="linear", tol=1e9)
    converged = kmeans_1d(x, 16, init="linear")
    assert np.array_equal(with_huge_tol[0], after_one_update[0])
    assert converged[2] < with_huge_tol[2]


def test_best_keeps_the_lowest_inertia_and_names_it():
    x = laplace(20_000, seed=1)
    per_init = {init: kmeans_1d(x, 64, init=init)[2] for init in INIT_METHODS}
    _, _, inertia, method = kmeans_1d(x, 64)
    assert inertia == min(per_init.values())
    assert method == min(per_init, key=per_init.get)
    assert inertia <= per_init["linear"]


def test_best_ties_go_to_linear():
    centroids, labels, inertia, method = kmeans_1d(np.array([1.0, 2.0, 3.0, 6.0]), 1)
    assert method == "linear"
    assert centroids.tolist() == [3.0]
    assert labels.tolist() == [0, 0, 0, 0]
    assert inertia == 14.0


# --- empty clusters, exact and degenerate inputs -------------------------------------------


def test_empty_cluster_is_reseeded_not_nan():
    # linspace(0, 10, 3) puts a centroid at 5, which owns no weight
    centroids, labels, inertia, _ = kmeans_1d(np.array([0.0, 0.1, 0.2, 10.0]), 3, init="linear")
    assert centroids.tolist() == np.float32([0.05, 0.2, 10.0]).tolist()
    assert labels.tolist() == [0, 0, 1, 2]
    assert inertia == pytest.approx(0.005, rel=1e-6)


def test_repeated_quantiles_still_give_k_clusters():
    x = np.concatenate((np.zeros(900), np.linspace(1.0, 2.0, 100)))  # 90 % zeros
    centroids, _, _, _ = kmeans_1d(x, 8, init="quantile")
    assert centroids.size == 8
    assert not np.isnan(centroids).any()


@pytest.mark.parametrize("k", [3, 4, 100])
def test_k_at_least_distinct_values_is_exact(k):
    weights = np.array([[3.0, 1.0, 2.0], [3.0, 1.0, 1.0]], dtype=np.float32)
    shared = share_weights(weights, k)
    assert shared.method == "exact"
    assert shared.codebook.tolist() == [[1.0, 2.0, 3.0]]
    assert shared.inertia == 0.0
    assert shared.dequantize().tobytes() == weights.tobytes()


@pytest.mark.parametrize("k", [1, 5])
def test_constant_tensor(k):
    shared = share_weights(np.full((4, 3), 0.25, dtype=np.float32), k)
    assert shared.codebook.tolist() == [[0.25]]
    assert shared.indices.tolist() == [[0] * 3] * 4
    assert shared.inertia == 0.0


def test_float16_input_roundtrips_exactly():
    weights = laplace(50).astype(np.float16)
    shared = share_weights(weights, 256)
    assert shared.method == "exact"
    assert shared.codebook.dtype == np.float32
    assert shared.dequantize().astype(np.float16).tobytes() == weights.tobytes()


def test_float64_input_gives_float32_codebook():
    weights = np.random.default_rng(0).normal(size=(16, 8))
    shared = share_weights(weights, 4)
    assert shared.codebook.dtype == np.float32
    assert shared.dequantize().dtype == np.float32
    assert shared.inertia == pytest.approx(direct_inertia(weights, shared), rel=1e-9)


@pytest.mark.parametrize(("k", "dtype"), [(2, np.uint8), (256, np.uint8), (257, np.uint16)])
def test_index_dtype_follows_requested_k(k, dtype):
    assert share_weights(laplace(10), k).indices.dtype == dtype


# --- granularity ---------------------------------------------------------------------------


def test_channel_codebooks_are_padded_with_the_last_centroid():
    weights = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    shared = share_weights(weights, 2, granularity="channel")
    assert shared.codebook.tolist() == [[1.0, 1.0], [1.5, 3.5]]
    assert shared.indices.tolist() == [[0, 0, 0, 0], [0, 0, 1, 1]]
    assert (shared.groups, shared.k_eff, shared.method) == (2, 2, "mixed")
    assert shared.inertia == 1.0
    assert shared.dequantize().tolist() == [[1.0] * 4, [1.5, 1.5, 3.5, 3.5]]


def test_channel_is_kmeans_per_output_channel():
    weights = laplace(4 * 3 * 3 * 3, seed=2).reshape(4, 3, 3, 3)
    shared = share_weights(weights, 8, granularity="channel")
    assert shared.codebook.shape == (4, 8)
    assert shared.indices.shape == weights.shape
    for g in range(4):
        centroids, labels, _, _ = kmeans_1d(weights[g].ravel(), 8)
        assert np.array_equal(shared.codebook[g], centroids)
        assert np.array_equal(shared.indices[g].ravel(), labels)
    assert shared.inertia == pytest.approx(direct_inertia(weights, shared), rel=1e-9)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_inertia_matches_dequantize(granularity):
    weights = laplace(64 * 9, seed=4).reshape(64, 9)
    shared = share_weights(weights, 4, granularity=granularity)
    assert shared.inertia == pytest.approx(direct_inertia(weights, shared), rel=1e-9)
    assert shared.k == 4
    assert shared.granularity == granularity


def test_shared_arrays_are_read_only():
    shared = share_weights(laplace(100), 4)
    assert not shared.codebook.flags.writeable
    assert not shared.indices.flags.writeable


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be an int in [1, 65536]; got 0"),
        ({"k": 65537}, "k must be an int in [1, 65536]; got 65537"),
        ({"k": 4.0}, "k must be an int in [1, 65536]; got 4.0"),
        ({"k": True}, "k must be an int in [1, 65536]; got True"),
        (
            {"granularity": "kernel"},
            "granularity must be one of ('layer', 'channel'); got 'kernel'",
        ),
        (
            {"init": "random"},
            "init must be one of ('linear', 'quantile', 'kmeans++', 'best'); got 'random'",
        ),
        ({"seed": -1}, "seed must be an int >= 0; got -1"),
    ],
)
def test_share_weights_rejects_bad_parameters(kwargs, message):
    with pytest.raises(UserError) as excinfo:
        share_weights(laplace(10), **{"k": 4, **kwargs})
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (
            np.array([1.0, np.nan, np.inf, -np.inf], dtype=np.float32),
            "weights must be finite and within float32 range; "
            "got 1 NaN and 2 infinite or out-of-range values",
        ),
        (
            np.array([1.0, 1e39]),
            "weights must be finite and within float32 range; "
            "got 0 NaN and 1 infinite or out-of-range values",
        ),
        (np.arange(4), "weights must be a floating-point array; got dtype int64"),
        (
            np.zeros((0, 3)),
            "weights must have at least 1 dimension and 1 element; got shape (0, 3)",
        ),
    ],
)
def test_share_weights_rejects_bad_weights(weights, message):
    with pytest.raises(UserError) as excinfo:
        share_weights(weights, 4)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("x", "kwargs", "message"),
    [
        (np.zeros((2, 2)), {}, "x must be a 1-D array; got shape (2, 2)"),
        (np.zeros(3), {"max_iter": -1}, "max_iter must be an int >= 0; got -1"),
        (np.zeros(3), {"tol": -1.0}, "tol must be a finite float >= 0; got -1.0"),
        (np.zeros(3), {"tol": float("nan")}, "tol must be a finite float >= 0; got nan"),
        (np.zeros(3), {"k": 0}, "k must be an int in [1, 65536]; got 0"),
        (np.zeros(3), {"init": "best "}, "init must be one of"),
    ],
)
def test_kmeans_1d_rejects_bad_parameters(x, kwargs, message):
    with pytest.raises(UserError, match="^" + re.escape(message)):
        kmeans_1d(x, **{"k": 2, **kwargs})


# --- properties ----------------------------------------------------------------------------

continuous = hnp.arrays(
    np.float32,
    st.integers(1, 60),
    elements=st.floats(-100.0, 100.0, width=32, allow_subnormal=False),
)
with_repeats = hnp.arrays(
    np.float32, st.integers(1, 60), elements=st.sampled_from([-3.0, -0.5, 0.0, 0.25, 1.0, 7.0])
)


@settings(max_examples=150, deadline=None)
@given(
    x=st.one_of(continuous, with_repeats),
    k=st.integers(1, 12),
    init=st.sampled_from(ALL_INITS),
)
def test_kmeans_1d_properties(x, k, init):
    centroids, labels, inertia, method = kmeans_1d(x, k, init=init)
    distinct = np.unique(x).size
    assert centroids.dtype == np.float32
    assert 1 <= centroids.size <= min(k, distinct)
    assert np.all(np.diff(centroids) > 0)
    assert labels.shape == x.shape
    assert labels.min() >= 0 and labels.max() < centroids.size
    assert np.isfinite(inertia) and inertia >= 0.0
    x64, c64 = x.astype(np.float64), centroids.astype(np.float64)
    assigned = np.abs(x64 - c64[labels])
    nearest = np.abs(x64[:, None] - c64[None, :]).min(axis=1)
    assert np.all(assigned <= nearest + 1e-9)
    assert inertia == pytest.approx(float(np.square(x64 - c64[labels]).sum()), rel=1e-9, abs=1e-12)
    assert method == "exact" if k >= distinct else method in INIT_METHODS
    if k >= distinct:
        assert inertia == 0.0


@settings(max_examples=50, deadline=None)
@given(
    weights=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=4, max_side=5),
        elements=st.floats(-1.0, 1.0, width=32),
    ),
    k=st.integers(1, 6),
    granularity=st.sampled_from(GRANULARITIES),
)
def test_share_weights_properties(weights, k, granularity):
    shared = share_weights(weights, k, granularity=granularity)
    groups = 1 if granularity == "layer" else weights.shape[0]
    assert shared.codebook.shape[0] == shared.groups == groups
    assert shared.k_eff <= k
    assert np.all(np.diff(shared.codebook, axis=1) >= 0)
    assert shared.indices.shape == weights.shape
    assert int(shared.indices.max()) < shared.k_eff
    assert not np.isnan(shared.dequantize()).any()
    assert shared.inertia == pytest.approx(direct_inertia(weights, shared), rel=1e-9, abs=1e-12)


# --- cache ---------------------------------------------------------------------------------


def test_cache_computes_once_per_layer_and_k():
    weights = {"conv1": laplace(300, seed=1), "fc": laplace(500, seed=2)}
    cache = ClusterCache(weights)
    first = cache.get("conv1", 8)
    assert cache.get("conv1", 8) is first
    assert len(cache) == 1
    cache.get("conv1", 4)
    cache.get("fc", 8)
    assert len(cache) == 3
    expected = share_weights(weights["conv1"], 8)
    assert np.array_equal(first.codebook, expected.codebook)
    assert np.array_equal(first.indices, expected.indices)


def test_cache_keeps_pristine_weights():
    weights = {"conv1": laplace(300, seed=1)}
    pristine = weights["conv1"].copy()
    cache = ClusterCache(weights, granularity="channel", init="linear", seed=3)
    weights["conv1"][:] = 0.0  # e.g. a backend writing clustered weights in place
    shared = cache.get("conv1", 4)
    expected = share_weights(pristine, 4, granularity="channel", init="linear", seed=3)
    assert np.array_equal(shared.dequantize(), expected.dequantize())


def test_cache_rejects_unknown_layer_and_bad_k():
    cache = ClusterCache({"conv1": laplace(10)})
    with pytest.raises(UserError) as excinfo:
        cache.get("conv2", 4)
    assert str(excinfo.value) == "layer must be one of the 1 cached layers ('conv1'); got 'conv2'"
    with pytest.raises(UserError, match=r"^k must be an int in \[1, 65536\]; got 0$"):
        cache.get("conv1", 0)


def test_cache_validates_its_weights():
    with pytest.raises(UserError, match=r"^weights\['bad'\] must be finite"):
        ClusterCache({"bad": np.array([np.nan], dtype=np.float32)})


# --- sensitivity-weighted k-means -------------------------------------------------------


@pytest.mark.parametrize("granularity", ["layer", "channel"])
@pytest.mark.parametrize("init", ["best", "linear", "quantile", "kmeans++"])
def test_uniform_importance_is_plain_kmeans_bit_for_bit(granularity, init):
    weights = np.random.default_rng(3).standard_normal((12, 6, 3, 3)).astype(np.float32)
    plain = share_weights(weights, 5, granularity=granularity, init=init, seed=1)
    weighted = share_weights(
        weights,
        5,
        granularity=granularity,
        init=init,
        seed=1,
        importance=np.full(weights.shape, 0.37),
    )
    assert weighted.codebook.tobytes() == plain.codebook.tobytes()
    assert weighted.indices.tobytes() == plain.indices.tobytes()
    assert weighted.inertia == plain.inertia
    assert weighted.method == plain.method


def test_a_very_important_weight_is_represented_exactly():
    weights = np.random.default_rng(4).standard_normal(500).astype(np.float32)
    importance = np.ones(500)
    importance[123] = 1e9
    plain = share_weights(weights, 4).dequantize()
    weighted = share_weights(weights, 4, importance=importance).dequantize()
    assert abs(plain[123] - weights[123]) > 1e-3  # plain k-means does not keep it
    assert weighted[123] == weights[123]


def test_weighted_kmeans_is_deterministic_and_lowers_the_weighted_error():
    rng = np.random.default_rng(5)
    weights = rng.standard_normal(2000).astype(np.float32)
    importance = rng.exponential(size=2000) ** 3
    first = share_weights(weights, 8, importance=importance)
    second = share_weights(weights, 8, importance=importance)
    assert first.codebook.tobytes() == second.codebook.tobytes()
    assert first.indices.tobytes() == second.indices.tobytes()

    def weighted_error(sw):
        return float((importance * (sw.dequantize() - weights) ** 2).sum())

    assert weighted_error(first) < weighted_error(share_weights(weights, 8))


def test_importance_is_validated():
    weights = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(
        UserError, match=r"importance must be a floating-point array of shape \(4, 4\)"
    ):
        share_weights(weights, 2, importance=np.ones(3))
    bad = np.ones((4, 4))
    bad[0, 0] = -1.0
    with pytest.raises(UserError, match="importance must be finite and >= 0; got 1 values"):
        share_weights(weights, 2, importance=bad)
    with pytest.raises(UserError, match="importance must cover every layer; 'b' has none"):
        ClusterCache({"a": weights, "b": weights}, importance={"a": np.ones((4, 4))})


def test_a_pruned_layer_shares_its_largest_magnitudes_and_decodes_exact_zeros():
    w = np.random.default_rng(0).standard_normal((8, 25)).astype(np.float32)
    cache = ClusterCache({"fc": w}, seed=0)
    sparse = cache.pruned("fc", 4, 0.75)
    assert int(sparse.mask.sum()) == 50
    assert np.array_equal(sparse.mask, sparsity_mask(w, 0.75))
    assert np.abs(w[sparse.mask]).min() >= np.abs(w[~sparse.mask]).max()
    expected = share_weights(w[sparse.mask], 4, seed=0)  # the survivors alone, one codebook
    assert np.array_equal(sparse.shared.codebook, expected.codebook)
    assert np.array_equal(sparse.shared.indices, expected.indices)
    dense = sparse.dequantize()
    assert dense.dtype == np.float32 and dense.shape == w.shape
    assert (dense[~sparse.mask] == 0).all()
    assert np.array_equal(dense[sparse.mask], expected.dequantize())
    assert cache.pruned("fc", 4, 0.75) is sparse and cache.choice("fc", "4@0.75") is sparse
    assert cache.choice("fc", 4) is cache.get("fc", 4)
    assert len(cache) == 2


def test_pruning_needs_layer_codebooks_and_a_survivor():
    w = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    with pytest.raises(UserError, match="--prune-grid needs --granularity layer; got 'channel'"):
        ClusterCache({"fc": w}, granularity="channel").pruned("fc", 2, 0.5)
    with pytest.raises(UserError, match="removes every one of the 12 weights of layer 'fc'"):
        ClusterCache({"fc": w}).pruned("fc", 2, 0.99)
    with pytest.raises(UserError, match=r"sparsity of layer 'fc' must be in \[0, 1\)"):
        ClusterCache({"fc": w}).pruned("fc", 2, 1.0)
