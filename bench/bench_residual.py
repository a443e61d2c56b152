"""Residual coding of successive checkpoints: the seed's bit-saving table, with baselines.

For each network and learning rate found in ``<cache>/checkpoints/<network>/EPOCH_LR.pt`` and
each gap n, the chain ``e0, e0 + n, ...`` (all epochs present) is coded closed loop, each epoch
against the decoder's previous one; the table gives the mean bit saving
``1 - file bytes / state-dict bytes`` over the chain's steps. Columns:

* ``zstd``: zstd -19 of the current state dict's raw bytes (no residual);
* ``zstd-bg``: zstd -19 of the same bytes grouped by byte position (ZipNN-style byte planes);
* ``zstd-bg xor``: byte-grouped zstd -19 of ``cur XOR prev`` (a lossless residual baseline);
* ``seed ResEntropy``: the seed's lossless scheme (byte-wise difference mod 256, one order-0
  table over the interleaved bytes), as its ideal code length + its 1 KiB table (estimate);
* ``ResEntropy``: ours, lossless, real file bytes;
* ``seed 16bits``: the seed's truncating sign-magnitude Q0.15 residual, two interleaved bytes
  under one order-0 table, ideal code length + 1 KiB (estimate; its error is up to 2^-15);
* ``ResEntropy16bits``: ours (step 2^-15, rounding, |err| <= 2^-16), real file bytes.

Then the holdout top-1/top-5 of the last rebuilt epoch of each ResEntropy16bits chain against the
original, and encode/decode throughput (MB/s of state-dict bytes, best of ``--repeat``; wall
and CPU seconds, since other jobs may share the cores).

    python bench/bench_residual.py [--networks lenet5_fashionmnist,resnet20_fashionmnist]
        [--intervals 1,3,5] [--repeat 3] [--json out.json] [--no-accuracy]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from weightshare.codecs.residual import decode_residual, encode_residual
from weightshare.modes.residual import AccuracyProbe, load_numpy_state
from weightshare.modes.residual_eval import run_sequence
from weightshare.networks.checkpoints import checkpoint_dir, default_cache_dir

ZSTD_LEVEL = 19
SEED_TABLE_BYTES = 1024


def flat_bytes(state: dict) -> np.ndarray:
    """Every tensor's little-endian bytes, concatenated (uint8)."""
    return np.concatenate(
        [
            np.frombuffer(v.astype(v.dtype.newbyteorder("<")).tobytes(), np.uint8)
            for v in state.values()
        ]
    )


def grouped(state: dict) -> bytes:
    """Byte planes: all first bytes of the 4-byte values, then all second bytes, ..."""
    parts = []
    for v in state.values():
        raw = np.frombuffer(v.astype(v.dtype.newbyteorder("<")).tobytes(), np.uint8)
        parts.append(raw.reshape(-1, v.dtype.itemsize) if v.dtype.itemsize == 4 else None)
    planes = np.concatenate([p for p in parts if p is not None])
    rest = [
        np.frombuffer(v.tobytes(), np.uint8)
        for v, p in zip(state.values(), parts, strict=True)
        if p is None
    ]
    return planes.T.tobytes() + b"".join(r.tobytes() for r in rest)


def order0_bytes(symbols: np.ndarray) -> float:
    """Ideal order-0 code length in bytes of a uint8 stream."""
    counts = np.bincount(symbols, minlength=256).astype(np.float64)
    p = counts[counts > 0] / symbols.size
    return float(-(counts[counts > 0] * np.log2(p)).sum() / 8)


def seed_lossless(cur: dict, prev: dict) -> int:
    """The seed's ResEntropy: byte-wise difference mod 256, one order-0 table (estimate)."""
    diff = flat_bytes(cur) - flat_bytes(prev)  # uint8 arithmetic wraps
    return int(order0_bytes(diff)) + SEED_TABLE_BYTES


def seed_16bits(cur: dict, prev: dict) -> int:
    """The seed's ResEntropy16bits: truncating sign-magnitude Q0.15, interleaved bytes."""
    parts = []
    for name, value in cur.items():
        if value.dtype.kind != "f":
            continue
        r = value.astype(np.float64).reshape(-1) - prev[name].astype(np.float64).reshape(-1)
        mag = np.minimum(np.floor(np.abs(r) * 2**15), 2**15 - 1).astype(np.uint16)
        code = mag | (np.signbit(r).astype(np.uint16) << 15)  # "-0" kept, as in the seed
        parts.append(np.stack([code >> 8, code & 0xFF], axis=1).astype(np.uint8).reshape(-1))
    others = sum(v.nbytes for v in cur.values() if v.dtype.kind != "f")
    return int(order0_bytes(np.concatenate(parts))) + SEED_TABLE_BYTES + others


def zstd(data: bytes) -> int:
    return len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data))


def xor_state(cur: dict, prev: dict) -> dict:
    return {
        k: (v.view(f"u{v.dtype.itemsize}") ^ prev[k].view(f"u{v.dtype.itemsize}"))
        if v.dtype.kind in "fiu"
        else v
        for k, v in cur.items()
    }


def timing(states: list[dict], method: str, repeat: int) -> dict:
    """Best-of-``repeat`` encode/decode throughput over the chain (open loop: same sizes)."""
    total = sum(sum(v.nbytes for v in s.values()) for s in states[1:])
    enc_wall = dec_wall = enc_cpu = dec_cpu = 0.0
    for prev, cur in itertools.pairwise(states):
        best = [np.inf] * 4
        for _ in range(repeat):
            w, c = time.perf_counter(), time.process_time()
            data = encode_residual(cur, prev, method=method)
            w2, c2 = time.perf_counter(), time.process_time()
            decode_residual(data, prev)
            w3, c3 = time.perf_counter(), time.process_time()
            for i, t in enumerate((w2 - w, c2 - c, w3 - w2, c3 - c2)):
                best[i] = min(best[i], t)
        enc_wall += best[0]
        enc_cpu += best[1]
        dec_wall += best[2]
        dec_cpu += best[3]
    return {
        "bytes": total,
        "encode_wall_mb_s": total / enc_wall / 1e6,
        "encode_cpu_mb_s": total / max(enc_cpu, 1e-9) / 1e6,
        "decode_wall_mb_s": total / dec_wall / 1e6,
        "decode_cpu_mb_s": total / max(dec_cpu, 1e-9) / 1e6,
    }


def checkpoints(network: str) -> dict[str, dict[int, Path]]:
    """lr -> epoch -> path of the cached train checkpoints."""
    out: dict[str, dict[int, Path]] = {}
    for path in checkpoint_dir(default_cache_dir(), network).glob("*_*.pt"):
        epoch, lr = path.stem.split("_", 1)
        if epoch.isdigit():
            out.setdefault(lr, {})[int(epoch)] = path
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", default="lenet5_fashionmnist,resnet20_fashionmnist")
    p.add_argument("--intervals", default="1,3,5")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-accuracy", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    intervals = [int(n) for n in args.intervals.split(",")]
    rows, accuracy, speed = [], [], []
    for network in args.networks.split(","):
        probe = None if args.no_accuracy else AccuracyProbe(network, args.threads)
        for lr, paths in sorted(checkpoints(network).items()):
            epochs_all = sorted(paths)
            cache = {}

            def load(e, paths=paths, cache=cache):
                if e not in cache:
                    cache[e] = load_numpy_state(paths[e])
                return cache[e]

            for n in intervals:
                epochs = list(range(epochs_all[0], epochs_all[-1] + 1, n))
                epochs = [e for e in epochs if e in paths]
                if len(epochs) < 2:
                    rows.append({"network": network, "lr": lr, "n": n, "epochs": epochs})
                    continue
                states = [load(e) for e in epochs]
                labelled = [(str(paths[e]), s) for e, s in zip(epochs, states, strict=True)]
                res = run_sequence(
                    labelled,
                    ("ResEntropy", "ResEntropy16bits"),
                    network=network,
                    probe=probe,
                    accuracy="last",
                    progress=False,
                )
                pairs = list(itertools.pairwise(states))
                orig = [sum(v.nbytes for v in c.values()) for _, c in pairs]

                def mean_saving(sizes, orig=orig):
                    return statistics.fmean(1 - s / o for s, o in zip(sizes, orig, strict=True))

                row = {
                    "network": network,
                    "lr": lr,
                    "n": n,
                    "epochs": epochs,
                    "zstd": mean_saving([zstd(flat_bytes(c).tobytes()) for _, c in pairs]),
                    "zstd_bg": mean_saving([zstd(grouped(c)) for _, c in pairs]),
                    "zstd_bg_xor": mean_saving([zstd(grouped(xor_state(c, p))) for p, c in pairs]),
                    "seed_lossless": mean_saving([seed_lossless(c, p) for p, c in pairs]),
                    "ResEntropy": statistics.fmean(
                        r.saving for r in res if r.method == "ResEntropy"
                    ),
                    "seed_16bits": mean_saving([seed_16bits(c, p) for p, c in pairs]),
                    "ResEntropy16bits": statistics.fmean(
                        r.saving for r in res if r.method == "ResEntropy16bits"
                    ),
                    "max_err_16bits": max(
                        r.max_abs_err for r in res if r.method == "ResEntropy16bits"
                    ),
                    "all_exact_lossless": all(r.exact for r in res if r.method == "ResEntropy"),
                }
                rows.append(row)
                last = [r for r in res if r.method == "ResEntropy16bits"][-1]
                if last.top1 is not None:
                    accuracy.append(
                        {
                            "network": network,
                            "lr": lr,
                            "n": n,
                            "epoch": epochs[-1],
                            "top1": last.top1,
                            "top1_original": last.top1_original,
                            "top5": last.top5,
                            "top5_original": last.top5_original,
                        }
                    )
            states = [load(e) for e in epochs_all]
            for method in ("ResEntropy", "ResEntropy16bits", "ResidualFloat16", "Float16"):
                speed.append(
                    {
                        "network": network,
                        "lr": lr,
                        "method": method,
                        **timing(states, method, args.repeat),
                    }
                )
    print_tables(rows, accuracy, speed)
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "accuracy": accuracy, "speed": speed}, indent=2, default=str)
        )
    return 0


def print_tables(rows, accuracy, speed) -> None:
    def pct(x):
        return f"{100 * x:.2f} %"

    print("\n### Bit saving (mean over the chain's steps; 1 - coded / state-dict bytes)\n")
    print(
        "| network | lr | n | epochs | zstd | zstd-bg | zstd-bg xor | seed ResEntropy (est.) "
        "| **ResEntropy** | seed 16bits (est.) | **ResEntropy16bits** | max err 16bits |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        e = r["epochs"]
        span = f"{e[0]}..{e[-1]} ({len(e) - 1} steps)" if len(e) > 1 else "n/a (too few epochs)"
        if "zstd" not in r:
            print(f"| {r['network']} | {r['lr']} | {r['n']} | {span} |" + " - |" * 8)
            continue
        print(
            f"| {r['network']} | {r['lr']} | {r['n']} | {span} | {pct(r['zstd'])} | "
            f"{pct(r['zstd_bg'])} | {pct(r['zstd_bg_xor'])} | {pct(r['seed_lossless'])} | "
            f"**{pct(r['ResEntropy'])}** | {pct(r['seed_16bits'])} | "
            f"**{pct(r['ResEntropy16bits'])}** | {r['max_err_16bits']:.3g} |"
        )
    if accuracy:
        print("\n### Holdout accuracy of the last rebuilt epoch (ResEntropy16bits, closed loop)\n")
        print(
            "| network | lr | n | epoch | top-1 rebuilt | top-1 original | top-5 rebuilt "
            "| top-5 original |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for a in accuracy:
            print(
                f"| {a['network']} | {a['lr']} | {a['n']} | {a['epoch']} | {pct(a['top1'])} | "
                f"{pct(a['top1_original'])} | {pct(a['top5'])} | {pct(a['top5_original'])} |"
            )
    print("\n### Throughput (MB/s of state-dict bytes, n = 1 chain, best of repeats)\n")
    print("| network | method | MB | encode wall | encode CPU | decode wall | decode CPU |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for s in speed:
        print(
            f"| {s['network']} | {s['method']} | {s['bytes'] / 1e6:.1f} | "
            f"{s['encode_wall_mb_s']:.0f} | {s['encode_cpu_mb_s']:.0f} | "
            f"{s['decode_wall_mb_s']:.0f} | {s['decode_cpu_mb_s']:.0f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
