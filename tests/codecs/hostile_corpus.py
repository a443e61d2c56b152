"""The committed hostile corpus: crafted model files that once crashed a reader, and how.

Each case is a file under ``tests/codecs/hostile/`` (valid header and checksums, crafted
contents), the command that must refuse it, and words of the one ``error:`` line expected.
``python -m tests.codecs.hostile_corpus`` rewrites the files; ``test_hostile_corpus.py`` checks
that the committed bytes are what this module builds and that every command exits 2 with one
line. The manifest is stored as plain JSON, so the bytes do not depend on the zlib build.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from weightshare.codecs.container import FORMAT_VERSION, HEADER, MAGIC, MANIFEST_JSON

CORPUS_DIR = Path(__file__).resolve().parent / "hostile"
HUGE_ZERO = [0] + [2**40] * 7  # 0 elements, but 2**280 counting the zero as one


@dataclass(frozen=True)
class Case:
    """One corpus file.

    Attributes:
        name: file name under ``CORPUS_DIR``.
        build: returns the file's bytes.
        argv: ``main.py`` arguments; ``{file}`` and ``{out}`` are filled in by the test.
        words: a substring of the expected ``error:`` line.
    """

    name: str
    build: Callable[[], bytes]
    argv: tuple[str, ...]
    words: str


def container(network: str, tensors: list[dict], meta: dict | None = None) -> bytes:
    """A file with valid checksums around any manifest.

    ``tensors`` are manifest entries whose ``"blobs"`` key lists ``(kind, bytes)`` pairs; each
    becomes a ``chunks`` entry (length, crc32) and its bytes go to the payload, in order.
    """
    entries, payload = [], b""
    for tensor in tensors:
        tensor = dict(tensor)
        blobs = tensor.pop("blobs")
        tensor["chunks"] = [
            {"kind": kind, "bytes": len(blob), "crc32": zlib.crc32(blob)} for kind, blob in blobs
        ]
        payload += b"".join(blob for _, blob in blobs)
        entries.append(tensor)
    document = {"network": network, "meta": meta or {}, "tensors": entries}
    text = json.dumps(document, separators=(",", ":")).encode()
    header = HEADER.pack(MAGIC, FORMAT_VERSION, MANIFEST_JSON, 0, len(text), zlib.crc32(text))
    return header + text + payload


def _tensor(shape, codec: str, blobs, dtype: str = "float32", params=None) -> dict:
    return {
        "name": "w",
        "shape": shape,
        "dtype": dtype,
        "codec": codec,
        "params": params or {},
        "blobs": blobs,
    }


def _residual_meta(method: str) -> dict:
    return {"residual": {"method": method, "lossless": False, "reference_sha256": "0" * 64}}


DECODE = ("--mode", "decode", "{file}", "--out", "{out}.pt")
RESIDUAL_DECODE = ("--mode", "residual_decode", "{file}", "--out", "{out}.pt")
CASES = (
    Case(
        "zero_dim_huge_extent_raw.wsz",
        lambda: container("lenet5_fashionmnist", [_tensor(HUGE_ZERO, "raw", [("data", b"")])]),
        DECODE,
        "spans more than 268435456 scalars",
    ),
    Case(
        "zero_dim_huge_extent_shared.wsz",
        lambda: container(
            "lenet5_fashionmnist",
            [
                _tensor(
                    HUGE_ZERO,
                    "shared",
                    [("codebook", b"\x00" * 4), ("indices", b"")],
                    params={
                        "k": 1,
                        "k_eff": 1,
                        "groups": 1,
                        "granularity": "layer",
                        "codebook_dtype": "fp32",
                        "coder": "fixed",
                    },
                )
            ],
        ),
        DECODE,
        "spans more than 268435456 scalars",
    ),
    Case(
        "zero_dim_huge_extent_fp16.wsz",
        lambda: container(
            "lenet5_fashionmnist",
            [_tensor(HUGE_ZERO, "fp16", [("data", b""), ("escapes", b"")])],
            _residual_meta("Float16"),
        ),
        RESIDUAL_DECODE,
        "spans more than 268435456 scalars",
    ),
    Case(
        "zero_dim_huge_extent_res_int.wsz",
        lambda: container(
            "lenet5_fashionmnist",
            [_tensor(HUGE_ZERO, "res_int", [("symbols", b""), ("bits", b"")])],
            _residual_meta("ResEntropy"),
        ),
        RESIDUAL_DECODE,
        "spans more than 268435456 scalars",
    ),
    Case(
        "extent_past_int64_raw.wsz",
        lambda: container(
            "lenet5_fashionmnist", [_tensor([2**40, 2**40, 2**40, 0], "raw", [("data", b"")])]
        ),
        DECODE,
        "spans more than 268435456 scalars",
    ),
    Case(
        "negative_dim_raw.wsz",
        lambda: container("lenet5_fashionmnist", [_tensor([-1, 4], "raw", [("data", b"")])]),
        DECODE,
        "got -1 in it",
    ),
    Case(
        "rank_9_raw.wsz",
        lambda: container("lenet5_fashionmnist", [_tensor([1] * 9, "raw", [("data", b"")])]),
        DECODE,
        "'shape' must be a list of <= 8 ints",
    ),
    Case(
        "keras_network_to_onnx.wsz",
        lambda: container(
            "mobilenetv3_small_imagenet", [_tensor([2], "raw", [("data", b"\x00" * 8)])]
        ),
        ("--mode", "decode", "{file}", "--out", "{out}.onnx"),
        "use --out FILE.pt",
    ),
)


def write_corpus(directory: Path = CORPUS_DIR) -> list[Path]:
    """(Re)write every case's file under ``directory``; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in CASES:
        path = directory / case.name
        path.write_bytes(case.build())
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_corpus():
        print(f"wrote {written} ({written.stat().st_size} bytes)")
