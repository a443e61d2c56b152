"""Benchmark the model-file codec: coded index size vs entropy and generic compressors, speed.

Usage (from the repository root):
    python bench/bench_codec.py [--results lenet5_fashionmnist=DIR ...] [--repeat 5]
        [--synthetic 4000000] [--granularity layer]

Configurations (printed with the table):

* ``lenet5_fashionmnist``: the committed baseline ``baselines/lenet5_fashionmnist.pt``;
* ``resnet20_fashionmnist``: ``baselines/resnet20_fashionmnist.pt`` when it exists, else the
  network with seeded random init (``torch.manual_seed(0)``), which the table says;
* k per layer: the ``best`` entry of ``DIR/results.json`` when ``--results NAME=DIR`` is given,
  else k = 16 for every clusterable layer; init "best", seed 0, the given granularity;
* ``synthetic``: one Laplace(0, 0.02) layer of ``--synthetic`` weights at k = 16, for the
  steady-state speed of the coders (per-layer overheads dominate on LeNet-5).

Columns of the size table (indices only, all clustered layers summed):
``H`` the empirical order-0 entropy of each layer's indices (``sum n_l H_l``, per codebook
group for channel granularity); ``ans`` and ``huffman`` the index chunks the encoder writes
(model tables included) and their excess over ``H``; ``fixed`` the ``ceil(log2 k)``-bit
packing; ``zstd-19`` and ``lzma`` (preset 9 | extreme) applied per layer to the packed indices
and, in brackets, to the indices stored one per byte. The file table gives whole-file sizes,
the ratio against the fp32 state dict, and encode / decode speed in MB/s of the fp32 state dict
(median of ``--repeat`` runs of ``encode_model`` / ``decode_model``; clustering excluded).
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from weightshare.codecs import (
    CODER_NAMES,
    decode_model,
    encode_indices,
    encode_model,
    original_bytes,
)
from weightshare.codecs.container import read_container
from weightshare.codecs.counts import group_counts, order0_bits
from weightshare.dse.clustering import ClusterCache, share_weights

NETWORKS = ("lenet5_fashionmnist", "resnet20_fashionmnist")
DEFAULT_K = 16


def load_network(name: str):
    """(state dict as numpy, clusterable layer names, description of the weights)."""
    import torch

    from weightshare.networks import get_network
    from weightshare.networks.checkpoints import BASELINE_DIR, load_into

    spec = get_network(name)
    path = BASELINE_DIR / f"{name}.pt"
    torch.manual_seed(0)
    model = spec.build()
    if path.is_file():
        load_into(model, path)
        source = f"baselines/{path.name}"
    else:
        source = "seeded random init (no trained baseline)"
    layers = [
        n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return state, layers, source


def k_vector(name: str, layers: list[str], results: dict[str, Path]) -> tuple[dict, str]:
    if name in results:
        doc = json.loads((results[name] / "results.json").read_text())
        return dict(doc["best"]["k_per_layer"]), f"best of {results[name]}/results.json"
    return {layer: DEFAULT_K for layer in layers}, f"k = {DEFAULT_K} everywhere"


def entropy_bits(shared) -> float:
    """Order-0 entropy of a layer's indices per codebook group, in bits (no codebooks)."""
    return order0_bits(group_counts(shared.indices.reshape(shared.groups, -1), shared.k_eff))


def median_seconds(fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock and median CPU seconds (this process) of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def measure(label: str, state: dict, shared: dict, repeat: int) -> dict:
    """Sizes and speeds of one configuration."""
    import zstandard

    zstd = zstandard.ZstdCompressor(level=19)
    row = {"label": label, "weights": sum(sw.indices.size for sw in shared.values())}
    row["entropy"] = sum(entropy_bits(sw) for sw in shared.values()) / 8
    packed = [
        encode_indices(sw.indices.reshape(sw.groups, -1), sw.k_eff, "fixed")
        for sw in shared.values()
    ]
    as_bytes = [sw.indices.astype(np.uint8).tobytes() for sw in shared.values() if sw.k <= 256]
    row["fixed"] = sum(len(p) for p in packed)
    row["zstd"] = sum(len(zstd.compress(p)) for p in packed)
    row["lzma"] = sum(len(lzma.compress(p, preset=9 | lzma.PRESET_EXTREME)) for p in packed)
    row["zstd_bytes"] = sum(len(zstd.compress(p)) for p in as_bytes)
    row["lzma_bytes"] = sum(len(lzma.compress(p, preset=9 | lzma.PRESET_EXTREME)) for p in as_bytes)
    row["original"] = original_bytes(state)
    for coder in CODER_NAMES:
        data = encode_model(state, shared, network=label, coder=coder)
        manifest, _ = read_container(data)
        row[coder] = sum(
            c.length
            for t in manifest.tensors
            if t.codec == "shared"
            for c in t.chunks
            if c.kind == "indices"
        )
        row[f"{coder}_file"] = len(data)
        enc = median_seconds(
            lambda coder=coder: encode_model(state, shared, network=label, coder=coder), repeat
        )
        dec = median_seconds(lambda data=data: decode_model(data), repeat)
        row[f"{coder}_enc"] = [row["original"] / t / 1e6 for t in enc]
        row[f"{coder}_dec"] = [row["original"] / t / 1e6 for t in dec]
    return row


def pct(value: float, reference: float) -> str:
    return f"{100 * (value / reference - 1):+.2f} %"


def print_tables(rows: list[dict]) -> None:
    print("\nIndex bytes (all clustered layers):\n")
    print(
        "| config | weights | H (entropy) | ans | huffman | fixed | zstd-19 packed [bytes] "
        "| lzma packed [bytes] |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        h = r["entropy"]
        print(
            f"| {r['label']} | {r['weights']:,} | {h:,.0f} | {r['ans']:,} ({pct(r['ans'], h)}) "
            f"| {r['huffman']:,} ({pct(r['huffman'], h)}) | {r['fixed']:,} ({pct(r['fixed'], h)}) "
            f"| {r['zstd']:,} [{r['zstd_bytes']:,}] ({pct(r['zstd'], h)}) "
            f"| {r['lzma']:,} [{r['lzma_bytes']:,}] ({pct(r['lzma'], h)}) |"
        )
    print(
        "\nWhole file (fp32 codebooks) and speed in MB/s of the fp32 state dict, "
        "wall clock (CPU time of this process):\n"
    )
    print("| config | fp32 state dict | coder | file bytes | ratio | encode MB/s | decode MB/s |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        for coder in CODER_NAMES:
            (enc_wall, enc_cpu), (dec_wall, dec_cpu) = r[f"{coder}_enc"], r[f"{coder}_dec"]
            print(
                f"| {r['label']} | {r['original']:,} | {coder} | {r[f'{coder}_file']:,} "
                f"| {r['original'] / r[f'{coder}_file']:.2f}x | {enc_wall:.0f} ({enc_cpu:.0f}) "
                f"| {dec_wall:.0f} ({dec_cpu:.0f}) |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", nargs="*", default=[], metavar="NAME=DIR")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--synthetic", type=int, default=4_000_000, metavar="N")
    parser.add_argument("--granularity", choices=("layer", "channel"), default="layer")
    args = parser.parse_args()
    results = dict(item.split("=", 1) for item in args.results)
    results = {name: Path(path) for name, path in results.items()}
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {args.granularity} granularity"
    )
    rows = []
    for name in NETWORKS:
        state, layers, source = load_network(name)
        k_map, which = k_vector(name, layers, results)
        cache = ClusterCache({n: state[f"{n}.weight"] for n in k_map}, granularity=args.granularity)
        shared = {f"{n}.weight": cache.get(n, k) for n, k in k_map.items()}
        print(f"{name}: weights {source}; {which}")
        rows.append(measure(name, state, shared, args.repeat))
    if args.synthetic:
        weights = np.random.default_rng(0).laplace(0, 0.02, args.synthetic).astype(np.float32)
        shared = {"w": share_weights(weights, DEFAULT_K, granularity="layer")}
        print(f"synthetic: one Laplace(0, 0.02) layer of {args.synthetic:,} weights, k = 16")
        rows.append(measure("synthetic", {"w": weights}, shared, args.repeat))
    print_tables(rows)


if __name__ == "__main__":
    main()
