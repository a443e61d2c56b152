"""Per-layer weight sharing by 1-D k-means (numpy only, deterministic).

A weight tensor is replaced by a small float32 codebook and one integer index per weight.
The clustering is exact 1-D Lloyd k-means run on the sorted weights:

* the weights are sorted once and prefix sums of ``x`` and ``x**2`` are taken (float64);
* with ascending centroids, the cluster boundaries are the midpoints between neighbouring
  centroids, found with :func:`numpy.searchsorted` on the sorted data, and the cluster sums
  and counts come from the prefix sums, so one Lloyd step costs O(k log n);
* Lloyd stops when the boundaries no longer move (or after ``max_iter`` steps);
* when fewer than ``k`` clusters own weights (an empty cluster, or an init with repeated
  values), the missing ones restart at the weights farthest from their centroids, as in
  scikit-learn; that update is O(n) and rare. Centroids that still own no weight at the end
  are dropped, so the codebook may hold fewer than ``k`` entries (``k_eff``), never NaN;
* the centroids are rounded to float32 once, every weight is assigned to its nearest float32
  centroid, and the inertia is computed from that stored codebook, so it matches
  :meth:`SharedWeights.dequantize` exactly.

Every random draw comes from a ``numpy.random.Generator`` seeded by the caller: the same input
gives the same output bit for bit. No (n, k) distance matrix is ever built.

Sensitivity-weighted k-means (SqueezeLLM): with an ``importance`` per weight (>= 0, for example
its diagonal Fisher information), Lloyd minimises ``sum importance * (x - c)**2``: the cluster
means are importance-weighted (weighted prefix sums, still O(k log n) per step), the relocation
of an empty cluster picks the largest ``sqrt(importance) * |x - c|`` and the inertia that picks
the best init is weighted. The inits themselves are the unweighted ones. Importances are
divided by their maximum (floored at ``IMPORTANCE_FLOOR`` so every cluster has a mean), so a
uniform importance gives exactly the plain k-means result, bit for bit.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from numbers import Real

import numpy as np

from weightshare.codecs.sparse import SparseShared
from weightshare.dse.space import parse_choice
from weightshare.errors import UserError
from weightshare.pruning.magnitude import sparsity_mask
from weightshare.types import GRANULARITIES, K_MAX, SharedWeights
from weightshare.validation import check_choice, check_int

INIT_METHODS = ("linear", "quantile", "kmeans++")
KMEANSPP_RESTARTS = 3
MAX_ITER = 300

IMPORTANCE_FLOOR = 1e-12  # relative to the largest importance of the tensor or channel
INIT_CHOICES = (*INIT_METHODS, "best")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def kmeans_1d(
    x: np.ndarray,
    k: int,
    *,
    init: str = "best",
    max_iter: int = MAX_ITER,
    tol: float = 0.0,
    seed: int = 0,
    importance: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Cluster 1-D data with Lloyd's k-means.

    Args:
        x: 1-D floating-point array, shape ``(n,)``, n >= 1, finite. Computed in float64.
        k: number of clusters, an int in ``[1, 65536]``.
        init: ``"linear"`` (``linspace(min, max, k)``, the seed's), ``"quantile"`` (the
            ``(i + 0.5) / k`` quantiles), ``"kmeans++"`` (D² sampling, best of
            ``KMEANSPP_RESTARTS`` seeded restarts) or ``"best"`` (all of them; the lowest
            inertia wins, ties go to ``"linear"``, so it is never worse than ``"linear"``).
        max_iter: maximum number of Lloyd updates (``0`` keeps the initial centroids, less
            those that own no weight).
        tol: stop early once the summed squared centroid shift of one update is at most
            ``tol * var(x)``. ``0.0`` runs until the assignments stop changing.
        seed: seed of the generator used by ``"kmeans++"``.
        importance: None (plain k-means) or the weight of each point, shape ``(n,)``, finite,
            >= 0; the inertia is then ``sum importance * (x - c)**2`` after the importances are
            divided by their maximum.

    Returns:
        ``(centroids, labels, inertia, method)``: centroids float32, shape ``(k_eff,)``,
        strictly ascending, ``k_eff <= min(k, distinct values)``; labels intp, shape ``(n,)``,
        the index of each point's nearest centroid; inertia, float64 sum of squared distances
        to the float32 centroids; method, the init that won or ``"exact"`` when
        ``k >= distinct values`` (then the centroids are the distinct values).

    Raises:
        UserError: on an invalid parameter or non-finite data.
    """
    k = check_int("k", k, 1, K_MAX)
    check_choice("init", init, INIT_CHOICES)
    max_iter = check_int("max_iter", max_iter, 0)
    seed = check_int("seed", seed, 0)
    if isinstance(tol, bool) or not isinstance(tol, Real) or not 0.0 <= tol < np.inf:
        raise UserError(f"tol must be a finite float >= 0; got {tol!r}")
    x = _check_weights("x", x)
    if x.ndim != 1:
        raise UserError(f"x must be a 1-D array; got shape {x.shape}")
    w = None if importance is None else _check_importance("importance", importance, x.shape)
    return _cluster(x.astype(np.float64), k, init, max_iter, float(tol), seed, _normalized(w))


def share_weights(
    weights: np.ndarray,
    k: int,
    *,
    granularity: str = "layer",
    init: str = "best",
    seed: int = 0,
    importance: np.ndarray | None = None,
) -> SharedWeights:
    """Replace a weight tensor by ``k`` shared values per layer or per output channel.

    Args:
        weights: floating-point array in the framework's layout, output channels on axis 0
            (PyTorch ``(out, in/groups, kh, kw)`` or ``(out, in)``); at least 1 element, finite.
        k: shared values per codebook, an int in ``[1, 65536]``.
        granularity: ``"layer"`` (one codebook) or ``"channel"`` (one per ``weights[g]``).
        init: see :func:`kmeans_1d`.
        seed: see :func:`kmeans_1d`; every channel uses the same seed.
        importance: None, or one importance per weight, the shape of ``weights`` (see
            :func:`kmeans_1d`; normalised per codebook).

    Returns:
        The :class:`SharedWeights`; Lloyd runs with ``max_iter=MAX_ITER`` and ``tol=0``.

    Raises:
        UserError: on an invalid parameter or non-finite weights.
    """
    k = check_int("k", k, 1, K_MAX)
    check_choice("granularity", granularity, GRANULARITIES)
    check_choice("init", init, INIT_CHOICES)
    seed = check_int("seed", seed, 0)
    weights = _check_weights("weights", weights)
    if importance is not None:
        importance = _check_importance("importance", importance, weights.shape)
    return _share(weights, k, granularity, init, seed, importance)


class ClusterCache:
    """In-memory cache of :class:`SharedWeights` per (layer name, k), and of pruned layers'
    :class:`~weightshare.codecs.sparse.SparseShared` per (layer name, k, sparsity).

    The granularity, init and seed are fixed per cache. The cache keeps read-only copies of the
    pristine weights it was given, so later changes to the caller's arrays (for example a
    backend writing clustered weights in place) never leak into the clustering.

    Args:
        weights: layer name -> floating-point weight tensor (see :func:`share_weights`).
        granularity, init, seed: see :func:`share_weights`.
        importance: None (plain k-means), or layer name -> importance of each weight (the
            shape of its tensor) for sensitivity-weighted k-means; every layer needs one.

    Raises:
        UserError: on an invalid parameter or non-finite weights.
    """

    def __init__(
        self,
        weights: Mapping[str, np.ndarray],
        *,
        granularity: str = "layer",
        init: str = "best",
        seed: int = 0,
        importance: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        check_choice("granularity", granularity, GRANULARITIES)
        check_choice("init", init, INIT_CHOICES)
        self._seed = check_int("seed", seed, 0)
        self._granularity = granularity
        self._init = init
        self._weights: dict[str, np.ndarray] = {}
        for name, tensor in weights.items():
            pristine = np.array(_check_weights(f"weights[{name!r}]", tensor), copy=True)
            pristine.setflags(write=False)
            self._weights[name] = pristine
        self._importance: dict[str, np.ndarray] | None = None
        if importance is not None:
            self._importance = {}
            for name, tensor in self._weights.items():
                if name not in importance:
                    raise UserError(f"importance must cover every layer; {name!r} has none")
                values = _check_importance(
                    f"importance[{name!r}]", importance[name], tensor.shape
                ).copy()
                values.setflags(write=False)
                self._importance[name] = values
        self._shared: dict[tuple[str, int], SharedWeights] = {}
        self._pruned: dict[tuple[str, int, float], SparseShared] = {}
        self._masks: dict[tuple[str, float], np.ndarray] = {}

    def _check_layer(self, layer: str) -> None:
        if layer not in self._weights:
            names = sorted(self._weights)
            shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
            raise UserError(
                f"layer must be one of the {len(names)} cached layers ({shown}); got {layer!r}"
            )

    def choice(self, layer: str, value: int | str) -> SharedWeights | SparseShared:
        """``layer`` at a search choice (:func:`~weightshare.dse.space.choice`): :meth:`get` for
        an int k, :meth:`pruned` for ``"k@s"``."""
        k, sparsity = parse_choice(value)
        return self.get(layer, k) if sparsity == 0 else self.pruned(layer, k, sparsity)

    def pruned(self, layer: str, k: int, sparsity: float) -> SparseShared:
        """``layer`` magnitude-pruned to ``sparsity`` without retraining (the ``round(sparsity
        * n)`` smallest ``|w|`` removed, :func:`~weightshare.pruning.magnitude.sparsity_mask`),
        its survivors shared with ``k`` values in one codebook (their importances, if any,
        weight the k-means); removed weights decode to exact zeros. Cached per (layer, k,
        sparsity).

        Raises:
            UserError: channel granularity (a pruned layer has one codebook), a sparsity
                outside [0, 1) or one that removes every weight.
        """
        self._check_layer(layer)
        k = check_int("k", k, 1, K_MAX)
        key = (layer, k, float(sparsity))
        if key in self._pruned:
            return self._pruned[key]
        if self._granularity != "layer":
            raise UserError(
                "pruned layers share one codebook: --prune-grid needs --granularity layer; "
                f"got {self._granularity!r}"
            )
        if isinstance(sparsity, bool) or not 0.0 <= sparsity < 1.0:
            raise UserError(f"sparsity of layer {layer!r} must be in [0, 1); got {sparsity!r}")
        weights = self._weights[layer]
        if (layer, key[2]) not in self._masks:
            self._masks[(layer, key[2])] = sparsity_mask(weights, key[2])
        mask = self._masks[(layer, key[2])]
        if not mask.any():
            raise UserError(
                f"sparsity {sparsity!r} removes every one of the {weights.size} weights of "
                f"layer {layer!r}"
            )
        importance = None if self._importance is None else self._importance[layer][mask]
        shared = _share(weights[mask], k, "layer", self._init, self._seed, importance)
        self._pruned[key] = SparseShared(mask, shared)
        return self._pruned[key]

    def get(self, layer: str, k: int) -> SharedWeights:
        """The shared weights of ``layer`` at ``k``: computed on first use, then cached."""
        self._check_layer(layer)
        k = check_int("k", k, 1, K_MAX)
        key = (layer, k)
        if key not in self._shared:
            importance = None if self._importance is None else self._importance[layer]
            self._shared[key] = _share(
                self._weights[layer], k, self._granularity, self._init, self._seed, importance
            )
        return self._shared[key]

    def __len__(self) -> int:
        """Number of (layer, k) and (layer, k, sparsity) results computed so far."""
        return len(self._shared) + len(self._pruned)


# --- validation (public edge) -------------------------------------------------------------


def _check_weights(name: str, values: np.ndarray) -> np.ndarray:
    """``values`` as a non-empty floating-point array whose values fit in float32."""
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.floating):
        raise UserError(f"{name} must be a floating-point array; got dtype {array.dtype}")
    if array.ndim == 0 or array.size == 0:
        raise UserError(
            f"{name} must have at least 1 dimension and 1 element; got shape {array.shape}"
        )
    valid = np.isfinite(array)
    if array.dtype.itemsize > 4:  # float64 and wider can exceed the float32 codebook
        valid &= np.abs(array) <= _FLOAT32_MAX
    if not valid.all():
        n_nan = int(np.isnan(array).sum())
        n_big = array.size - n_nan - int(np.count_nonzero(valid))
        raise UserError(
            f"{name} must be finite and within float32 range; "
            f"got {n_nan} NaN and {n_big} infinite or out-of-range values"
        )
    return array


def _check_importance(name: str, values: np.ndarray, shape: tuple) -> np.ndarray:
    """``values`` as a float64 array of ``shape``, finite and >= 0."""
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.floating) or array.shape != tuple(shape):
        raise UserError(
            f"{name} must be a floating-point array of shape {tuple(shape)}; "
            f"got dtype {array.dtype}, shape {array.shape}"
        )
    array = array.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(array) | (array < 0)))
    if bad:
        raise UserError(f"{name} must be finite and >= 0; got {bad} values that are not")
    return array


# --- clustering (inputs trusted from here on) ---------------------------------------------


def _normalized(importance: np.ndarray | None) -> np.ndarray | None:
    """Importances divided by their maximum, floored at ``IMPORTANCE_FLOOR`` (float64).

    All equal (or all zero) gives exactly 1.0 everywhere, hence plain k-means bit for bit.
    """
    if importance is None:
        return None
    top = float(importance.max())
    if top <= 0.0:
        return np.ones_like(importance)
    return np.maximum(importance / top, IMPORTANCE_FLOOR)


def _share(
    weights: np.ndarray,
    k: int,
    granularity: str,
    init: str,
    seed: int,
    importance: np.ndarray | None = None,
) -> SharedWeights:
    """share_weights without validation."""
    w64 = weights.astype(np.float64)
    groups = 1 if granularity == "layer" else w64.shape[0]
    rows = w64.reshape(groups, -1)
    if importance is None:
        fits = [_cluster(row, k, init, MAX_ITER, 0.0, seed) for row in rows]
    else:
        weight_rows = importance.reshape(groups, -1)
        fits = [
            _cluster(row, k, init, MAX_ITER, 0.0, seed, _normalized(w))
            for row, w in zip(rows, weight_rows, strict=True)
        ]
    centroid_rows, label_rows, inertias, methods = zip(*fits, strict=True)
    codebook = np.empty((len(fits), max(c.size for c in centroid_rows)), dtype=np.float32)
    for g, centroids in enumerate(centroid_rows):
        codebook[g, : centroids.size] = centroids
        codebook[g, centroids.size :] = centroids[-1]  # padding, never indexed
    index_dtype = np.uint8 if k <= 256 else np.uint16
    indices = np.stack(label_rows).astype(index_dtype).reshape(weights.shape)
    codebook.setflags(write=False)
    indices.setflags(write=False)
    return SharedWeights(
        codebook=codebook,
        indices=indices,
        inertia=float(sum(inertias)),
        k=k,
        granularity=granularity,
        method=methods[0] if len(set(methods)) == 1 else "mixed",
    )


def _cluster(
    x: np.ndarray,
    k: int,
    init: str,
    max_iter: int,
    tol: float,
    seed: int,
    importance: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """kmeans_1d without validation; ``x`` is float64, shape ``(n,)``; ``importance`` None or
    normalised (:func:`_normalized`), shape ``(n,)``."""
    if importance is None:
        xs, ws = np.sort(x), None
    else:
        order = np.argsort(x)  # introsort: deterministic for a given input, 3x stable
        xs, ws = x[order], importance[order]
    is_new = np.concatenate(([True], xs[1:] != xs[:-1]))
    if k >= np.count_nonzero(is_new):
        centroids, inertia = _finalize(xs, xs[is_new], ws)
        method = "exact"
    else:
        centroids, inertia, method = _best_fit(xs, k, init, max_iter, tol, seed, ws)
    labels = np.searchsorted(_midpoints(centroids), x, side="left")
    return centroids, labels, inertia, method


def _best_fit(
    xs: np.ndarray,
    k: int,
    init: str,
    max_iter: int,
    tol: float,
    seed: int,
    ws: np.ndarray | None = None,
) -> tuple[np.ndarray, float, str]:
    """Lloyd from each requested init on sorted ``xs`` (more than k distinct values).

    ``ws``: None or the importance of each sorted weight (the inits ignore it). Returns the
    float32 centroids, inertia and init name with the lowest inertia; on ties the earlier init
    in ``INIT_METHODS`` order wins.
    """
    names = INIT_METHODS if init == "best" else (init,)
    p1 = np.concatenate(([0.0], np.cumsum(xs)))
    weighted = None
    if ws is not None:  # weighted prefix sums: sum(w * x) and sum(w)
        weighted = (
            np.concatenate(([0.0], np.cumsum(ws * xs))),
            np.concatenate(([0.0], np.cumsum(ws))),
        )
    p2 = np.concatenate(([0.0], np.cumsum(xs * xs))) if "kmeans++" in names else None
    max_shift = tol * float(xs.var()) if tol > 0.0 else 0.0
    rng = np.random.default_rng(seed)
    fits = []
    for name in names:
        for _ in range(KMEANSPP_RESTARTS if name == "kmeans++" else 1):
            if name == "linear":
                start = np.linspace(xs[0], xs[-1], k)
            elif name == "quantile":
                start = np.quantile(xs, (np.arange(k) + 0.5) / k)
            else:
                start = _kmeanspp(xs, p1, p2, k, rng)
            centroids = _lloyd(xs, p1, np.unique(start), k, max_iter, max_shift, ws, weighted)
            fits.append((*_finalize(xs, centroids, ws), name))
    return min(fits, key=lambda fit: fit[1])  # the first of equal inertias


def _lloyd(
    xs: np.ndarray,
    p1: np.ndarray,
    centroids: np.ndarray,
    k: int,
    max_iter: int,
    max_shift: float,
    ws: np.ndarray | None = None,
    weighted: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Lloyd's iterations on sorted ``xs`` using the prefix sums ``p1`` (shape ``(n + 1,)``).

    With importances ``ws`` (sorted like ``xs``), ``weighted`` holds the prefix sums of
    ``ws * xs`` and ``ws`` and the centroids are the importance-weighted cluster means.

    ``centroids`` (float64, strictly ascending, at most ``k``) are updated until the cluster
    boundaries stop moving, ``max_iter`` updates were made, or one update moved the centroids
    by at most ``max_shift`` (summed squares; 0 disables). An update where fewer than ``k``
    clusters own weights goes through :func:`_reseed`.
    """
    previous = None
    for _ in range(max_iter):
        bounds = _boundaries(xs, centroids)
        if previous is not None and np.array_equal(bounds, previous):
            break
        counts = np.diff(bounds)
        if weighted is None:
            sums, mass = p1[bounds[1:]] - p1[bounds[:-1]], counts
        else:
            sums = weighted[0][bounds[1:]] - weighted[0][bounds[:-1]]
            mass = weighted[1][bounds[1:]] - weighted[1][bounds[:-1]]
        if np.count_nonzero(counts) < k:
            updated = _reseed(xs, bounds, centroids, sums, counts, k, ws, mass)
        else:
            updated = np.unique(sums / mass)
        small_shift = (
            max_shift > 0.0
            and updated.size == centroids.size
            and float(np.square(updated - centroids).sum()) <= max_shift
        )
        centroids, previous = updated, bounds
        if small_shift:
            break
    return centroids


def _kmeanspp(
    xs: np.ndarray, p1: np.ndarray, p2: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """k-means++ seeding (D² sampling) on sorted ``xs`` with more than ``k`` distinct values.

    The nearest-centre regions of the sorted data are contiguous, so each region's cost
    ``sum (x - c)**2`` comes from the prefix sums ``p1``, ``p2`` (shape ``(n + 1,)``), and adding
    a centre only changes the costs of its own region and its two neighbours. Returns ``k``
    distinct data values, float64, ascending.
    """
    n = xs.size
    centers, costs = np.empty(k), np.empty(k)  # the first m entries are in use
    bounds = np.empty(k + 1, dtype=np.intp)
    centers[0], bounds[0], bounds[1] = xs[rng.integers(n)], 0, n
    costs[0] = _region_costs(p1, p2, bounds[:2], centers[:1])[0]
    for m in range(1, k):
        cumulative = np.cumsum(costs[:m])
        target = rng.random() * cumulative[-1]
        r = min(int(np.searchsorted(cumulative, target, side="right")), m - 1)
        start, stop = int(bounds[r]), int(bounds[r + 1])
        j = _sample_in_region(p1, p2, start, stop, centers[r], target - (cumulative[r] - costs[r]))
        value = xs[j]
        if value == centers[r]:  # only through rounding in the prefix-sum costs
            value = xs[np.argmax(_owner_distance(xs, bounds[: m + 1], centers[:m])[1])]
        pos = int(np.searchsorted(centers[:m], value))
        lo, hi = max(pos - 1, 0), min(pos + 1, m)  # regions whose cell changed
        centers[pos + 1 : m + 1] = centers[pos:m]  # insert at pos (numpy handles the overlap)
        centers[pos] = value
        costs[pos + 1 : m + 1] = costs[pos:m]
        bounds[lo + 2 : m + 2] = bounds[lo + 1 : m + 1]
        bounds[lo + 1 : hi + 1] = np.searchsorted(
            xs, _midpoints(centers[lo : hi + 1]), side="right"
        )
        costs[lo : hi + 1] = _region_costs(p1, p2, bounds[lo : hi + 2], centers[lo : hi + 1])
    return centers


def _sample_in_region(
    p1: np.ndarray, p2: np.ndarray, start: int, stop: int, center: float, target: float
) -> int:
    """First ``j`` in ``[start, stop)`` with cost of ``xs[start : j + 1]`` above ``target``.

    That cost (squared distances to ``center``) grows with ``j`` and comes from the prefix sums
    ``p1``, ``p2``, so bisection needs O(log n) evaluations. Clamped to ``stop - 1``.
    """

    def cost_through(j: int) -> float:
        s1, s2 = p1[j + 1] - p1[start], p2[j + 1] - p2[start]
        return s2 - 2.0 * center * s1 + center * center * (j + 1 - start)

    offset = bisect.bisect_right(range(start, stop), target, key=cost_through)
    return start + min(offset, stop - 1 - start)


def _region_costs(
    p1: np.ndarray, p2: np.ndarray, bounds: np.ndarray, centers: np.ndarray
) -> np.ndarray:
    """``sum((xs[a:b] - c)**2)`` per region ``[a, b)`` of ``bounds``, from prefix sums, >= 0."""
    start, stop = bounds[:-1], bounds[1:]
    s1 = p1[stop] - p1[start]
    s2 = p2[stop] - p2[start]
    return np.maximum(s2 - 2.0 * centers * s1 + centers * centers * (stop - start), 0.0)


def _reseed(
    xs: np.ndarray,
    bounds: np.ndarray,
    centroids: np.ndarray,
    sums: np.ndarray,
    counts: np.ndarray,
    k: int,
    ws: np.ndarray | None = None,
    mass: np.ndarray | None = None,
) -> np.ndarray:
    """Lloyd update when fewer than ``k`` clusters own weights (scikit-learn's relocation).

    With importances ``ws``, ``sums`` and ``mass`` are the weighted sums and total importances
    per cluster, and "farthest" means the largest ``sqrt(w) * |x - c|``.

    The missing clusters restart at the weights farthest from their current centroid (with more
    than ``k`` distinct values these distances are > 0), and those weights leave their old
    cluster's sum and count. Repeated values merge into one centroid; a cluster still missing is
    re-seeded at the next update. This update is O(n), unlike a plain one, and rare (mostly the
    first update after a linear init).
    Returns the new centroids, float64, strictly ascending.
    """
    owner, distance = _owner_distance(xs, bounds, centroids)
    if ws is not None:
        distance = distance * np.sqrt(ws)
    missing = k - np.count_nonzero(counts)
    far = np.argpartition(distance, xs.size - missing)[xs.size - missing :]
    if ws is None:
        sums = sums - np.bincount(owner[far], weights=xs[far], minlength=centroids.size)
        counts = counts - np.bincount(owner[far], minlength=centroids.size)
        owned = counts > 0
        return np.unique(np.concatenate((sums[owned] / counts[owned], xs[far])))
    sums = sums - np.bincount(owner[far], weights=(ws * xs)[far], minlength=centroids.size)
    mass = mass - np.bincount(owner[far], weights=ws[far], minlength=centroids.size)
    counts = counts - np.bincount(owner[far], minlength=centroids.size)
    owned = counts > 0
    return np.unique(np.concatenate((sums[owned] / mass[owned], xs[far])))


def _owner_distance(
    xs: np.ndarray, bounds: np.ndarray, centroids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each sorted weight's cluster (intp) and distance to its centroid (float64), shape (n,)."""
    owner = np.repeat(np.arange(centroids.size), np.diff(bounds))
    return owner, np.abs(xs - centroids[owner])


def _finalize(
    xs: np.ndarray, centroids: np.ndarray, ws: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Round ``centroids`` to float32, drop those owning no weight, and return the inertia.

    Returns the float32 centroids (strictly ascending) and the float64 inertia of sorted ``xs``
    against them, each weight counted against its nearest float32 centroid (times its
    importance ``ws`` when given).
    """
    stored = np.unique(centroids.astype(np.float32))
    counts = np.diff(_boundaries(xs, stored))
    if not counts.all():
        stored = stored[counts > 0]
        counts = np.diff(_boundaries(xs, stored))
    residual = xs - np.repeat(stored.astype(np.float64), counts)
    if ws is None:
        return stored, float(np.square(residual).sum())
    return stored, float((ws * np.square(residual)).sum())


def _boundaries(xs: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cluster ``j`` of sorted ``xs`` is ``xs[b[j]:b[j + 1]]``; b is intp, shape ``(m + 1,)``.

    A weight exactly on a midpoint goes to the lower centroid, as in ``_cluster``'s labels.
    """
    bounds = np.empty(centroids.size + 1, dtype=np.intp)
    bounds[0], bounds[-1] = 0, xs.size
    bounds[1:-1] = np.searchsorted(xs, _midpoints(centroids), side="right")
    return bounds


def _midpoints(centroids: np.ndarray) -> np.ndarray:
    """Float64 midpoints between neighbouring ascending centroids, shape ``(m - 1,)``."""
    c = centroids.astype(np.float64, copy=False)
    return (c[:-1] + c[1:]) * 0.5
