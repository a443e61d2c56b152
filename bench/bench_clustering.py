"""Benchmark weightshare.dse.clustering.share_weights on one large conv-like tensor.

Usage (from the repository root):
    python bench/bench_clustering.py [--n 2400000] [--k 16 256] [--repeat 3] [--no-sklearn]

Draws ``n`` float32 weights from Laplace(0, 0.02) (seed 0), times ``share_weights`` with the
default init ("best") and with "linear" (the seed's init) at each k, and prints a markdown table:
median seconds over the repeats, weights per second, inertia, and inertia / inertia(linear).
Once, at the smallest k, it also times scikit-learn's KMeans (Lloyd, n_init=1, the same linear
init, one thread) in a child process that is stopped after 60 s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from weightshare.dse.clustering import share_weights

SKLEARN_TIMEOUT_S = 60.0


def conv_like_weights(n: int) -> np.ndarray:
    """Seeded conv-like weights: float32, shape (n,), Laplace(0, 0.02)."""
    return np.random.default_rng(0).laplace(0.0, 0.02, n).astype(np.float32)


def time_share(weights: np.ndarray, k: int, init: str, repeat: int) -> tuple[float, float, str]:
    """Median seconds over ``repeat`` runs, the inertia and the winning init."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        shared = share_weights(weights, k, init=init)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), shared.inertia, shared.method


def sklearn_child(n: int, k: int, results: multiprocessing.Queue) -> None:
    """Fit scikit-learn KMeans from the linear init on one thread; put (seconds, inertia)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = conv_like_weights(n).astype(np.float64).reshape(-1, 1)
    init = np.linspace(x.min(), x.max(), k).reshape(-1, 1)
    with threadpool_limits(1):
        start = time.perf_counter()
        model = KMeans(n_clusters=k, init=init, n_init=1, max_iter=300, tol=0.0).fit(x)
        results.put((time.perf_counter() - start, float(model.inertia_)))


def time_sklearn(n: int, k: int) -> tuple[float, float] | str:
    """(seconds, inertia) of scikit-learn's KMeans, or why it was skipped."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "skipped: scikit-learn is not installed"
    results: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=sklearn_child, args=(n, k, results))
    child.start()
    child.join(SKLEARN_TIMEOUT_S)
    if child.is_alive():
        child.terminate()
        child.join()
        return f"skipped: did not finish in {SKLEARN_TIMEOUT_S:.0f} s"
    if child.exitcode != 0:
        return f"skipped: the child process failed (exit code {child.exitcode})"
    return results.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_400_000, help="number of weights")
    parser.add_argument("--k", type=int, nargs="+", default=[16, 256], help="values of k")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the sklearn reference")
    args = parser.parse_args()

    weights = conv_like_weights(args.n)
    cells = [(k, init) for k in args.k for init in ("best", "linear")]
    rows = {}
    for k, init in tqdm(cells, desc="share_weights", file=sys.stderr):
        rows[k, init] = time_share(weights, k, init, args.repeat)
    reference = None if args.no_sklearn else time_sklearn(args.n, min(args.k))

    print(f"n = {args.n:,} float32 weights, Laplace(0, 0.02), seed 0; median of {args.repeat}")
    print(f"numpy {np.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print()
    print("| k | init (winner) | seconds | weights/s | inertia | inertia / inertia(linear) |")
    print("|---:|---|---:|---:|---:|---:|")
    for k, init in cells:
        seconds, inertia, method = rows[k, init]
        ratio = inertia / rows[k, "linear"][1]
        name = f"{init} ({method})" if init == "best" else init
        print(
            f"| {k} | {name} | {seconds:.3f} | {args.n / seconds:,.0f} | {inertia:.6g} "
            f"| {ratio:.4f} |"
        )
    if isinstance(reference, tuple):
        seconds, inertia = reference
        ratio = inertia / rows[min(args.k), "linear"][1]
        print(
            f"| {min(args.k)} | sklearn KMeans, linear init, 1 thread, once | {seconds:.3f} "
            f"| {args.n / seconds:,.0f} | {inertia:.6g} | {ratio:.4f} |"
        )
    elif reference is not None:
        print(f"\nsklearn KMeans reference {reference}")


if __name__ == "__main__":
    main()
