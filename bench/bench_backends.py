"""Time per candidate on each backend, side by side on the same split and the same weights.

    python bench/bench_backends.py [--networks lenet5_fashionmnist resnet20_fashionmnist]
                                   [--backends pytorch onnxruntime tensorflow]
                                   [--k 16] [--repeat 5] [--threads 2] [--dataset_scale 1.0]

For every network the committed trained baseline (``baselines/<name>.pt``) is loaded, or, when
there is none, a seeded (seed 0) random initialisation is used and the output says so. The same
weights then run on PyTorch, on ONNX Runtime (the network's ONNX export, both swap strategies)
and on Keras (the rebuilt twin). One candidate is ``set_weights`` (every layer at k, clustered
once) + ``evaluate`` on the search split + ``restore``; the table gives medians over
``--repeat`` interleaved rounds of the plain forward pass of the split, of the whole candidate,
and of the swap alone (``set_weights`` + ``restore``, plus the session build of ONNX Runtime's
``rebuild`` strategy), each timed directly, and the evaluation overhead (candidate / forward;
``--backends pytorch`` is the former ``bench_evaluation.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from weightshare.backends.pytorch import PyTorchBackend
from weightshare.backends.registry import BACKEND_NAMES
from weightshare.dse.clustering import ClusterCache
from weightshare.networks import get_network
from weightshare.networks.checkpoints import BASELINE_DIR, load_into
from weightshare.networks.datasets import load_split
from weightshare.networks.transforms import fashion_mnist_transform


def _model(name: str):
    spec = get_network(name)
    path = BASELINE_DIR / f"{name}.pt"
    torch.manual_seed(0)
    model = spec.build().eval()
    if path.is_file():
        return spec, load_into(model, path).eval(), f"trained baseline ({path.name})"
    return spec, model, "seeded random init (no committed baseline yet: accuracy meaningless)"


def _backends(spec, model, threads: int, tmp: Path, names: list[str]) -> dict:
    """The chosen backends over ``model``: ``label -> backend`` (ONNX Runtime twice, one per
    swap strategy)."""
    transform = fashion_mnist_transform(spec.input_size)
    out = {}
    if "pytorch" in names:
        out["pytorch"] = PyTorchBackend(model, spec.input_size, threads=threads)
    if "onnxruntime" in names:
        from weightshare.backends.onnx_export import export_onnx
        from weightshare.backends.ort import OnnxRuntimeBackend

        example = torch.zeros(1, 1, spec.input_size, spec.input_size)
        onnx_path = export_onnx(model, example, tmp / f"{spec.name}.onnx")
        for swap in ("inputs", "rebuild"):
            out[f"onnxruntime ({swap})"] = OnnxRuntimeBackend(
                onnx_path, transform=transform, threads=threads, swap=swap
            )
    if "tensorflow" in names:
        from weightshare.backends.tf_keras import KerasBackend
        from weightshare.networks.keras_fashion import to_keras

        keras_model = to_keras(model, spec.input_size)
        out["tensorflow"] = KerasBackend(keras_model, transform=transform, threads=threads)
    return out


def bench(
    name: str, k: int, repeat: int, threads: int, split, tmp: Path, names: list[str]
) -> list[dict]:
    spec, model, origin = _model(name)
    backends = _backends(spec, model, threads, tmp, names)
    reference = PyTorchBackend(model, spec.input_size)  # clusters the same weights for all
    cache = ClusterCache({x.name: reference.get_weights(x.name) for x in reference.layers()})
    candidate = {x.name: cache.get(x.name, k).dequantize() for x in reference.layers()}
    times = {b: {"plain": [], "candidate": [], "swap": []} for b in backends}
    accuracy = {}
    for backend in backends.values():  # warm-up: input tensors built and cached, sessions made
        backend.evaluate(split)
    for _ in range(repeat):
        for label, backend in backends.items():
            start = time.perf_counter()
            backend.evaluate(split)
            times[label]["plain"].append(time.perf_counter() - start)
            begin = time.perf_counter()
            backend.set_weights(candidate)
            if hasattr(backend, "prepare"):
                backend.prepare()  # ONNX Runtime "rebuild": the session build is part of a swap
            swapped = time.perf_counter()
            accuracy[label] = backend.evaluate(split).top1
            evaluated = time.perf_counter()
            backend.restore()
            end = time.perf_counter()
            times[label]["swap"].append((swapped - begin) + (end - evaluated))
            times[label]["candidate"].append(end - begin)
    rows = []
    for label, t in times.items():
        rows.append(
            {
                "network": name,
                "origin": origin,
                "backend": label,
                "plain": statistics.median(t["plain"]),
                "candidate": statistics.median(t["candidate"]),
                "swap": statistics.median(t["swap"]),
                "accuracy": accuracy[label],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--networks", nargs="+", default=["lenet5_fashionmnist", "resnet20_fashionmnist"]
    )
    parser.add_argument("--backends", nargs="+", choices=BACKEND_NAMES, default=list(BACKEND_NAMES))
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dataset_scale", type=float, default=1.0)
    args = parser.parse_args()
    split = load_split("search", dataset_scale=args.dataset_scale)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks:
            rows += bench(name, args.k, args.repeat, args.threads, split, Path(tmp), args.backends)
    print(
        f"k = {args.k} on every layer, search split ({len(split)} images), {args.repeat} "
        f"interleaved repeats, {args.threads} threads, medians"
    )
    for name in args.networks:
        origin = next(r["origin"] for r in rows if r["network"] == name)
        print(f"- {name}: {origin}")
    print()
    print(
        "| network | backend | forward (s) | candidate: swap + forward + restore (s) "
        "| swap: set_weights + restore (s) | candidate / forward | candidate top-1 |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['network']} | {r['backend']} | {r['plain']:.3f} | {r['candidate']:.3f} "
            f"| {r['swap']:.4f} | {r['candidate'] / r['plain']:.3f} "
            f"| {100 * r['accuracy']:.2f} % |"
        )


if __name__ == "__main__":
    main()
