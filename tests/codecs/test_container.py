"""The container: layout, checksums, bounds and structural checks (codec-agnostic)."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import pytest

from weightshare.codecs.container import (
    FORMAT_VERSION,
    HEADER,
    MAGIC,
    MANIFEST_DICT,
    MANIFEST_JSON,
    MANIFEST_ZLIB,
    MAX_MANIFEST_BYTES,
    FormatError,
    TensorPayload,
    manifest_text,
    pack_manifest,
    read_container,
    write_container,
)
from weightshare.codecs.manifest_dictionary import MANIFEST_DICTIONARY_2
from weightshare.errors import UserError


def payloads() -> list[TensorPayload]:
    return [
        TensorPayload("a", (2, 3), "float32", "raw", {}, (("data", bytes(24)),)),
        TensorPayload(
            "b.weight",
            (4,),
            "float32",
            "future",
            {"x": [1, 2], "y": "z"},
            (("first", b"\x01\x02"), ("second", b""), ("third", b"xyz")),
        ),
        TensorPayload("c", (), "int64", "raw", {}, (("data", bytes(8)),)),
    ]


def dict_deflate(text: bytes) -> bytes:
    """Manifest coding 2 as the writer stores it: raw deflate against the preset dictionary."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zdict=MANIFEST_DICTIONARY_2)
    return deflater.compress(text) + deflater.flush()


def craft(document: dict, payload: bytes = b"", *, coding: int = MANIFEST_JSON, **fields) -> bytes:
    """A file with a hand-written manifest and valid checksums (to reach the deeper checks)."""
    text = json.dumps(document).encode()
    stored = {MANIFEST_ZLIB: zlib.compress(text), MANIFEST_DICT: dict_deflate(text)}.get(
        coding, text
    )
    header = {
        "magic": MAGIC,
        "version": FORMAT_VERSION,
        "coding": coding,
        "reserved": 0,
        "length": len(stored),
        "crc": zlib.crc32(stored),
        **fields,
    }
    return HEADER.pack(*header.values()) + stored + payload


def document(**tensor) -> dict:
    entry = {
        "name": "t",
        "shape": [2],
        "dtype": "float32",
        "codec": "raw",
        "params": {},
        "chunks": [{"kind": "data", "bytes": 8, "crc32": zlib.crc32(bytes(8))}],
        **tensor,
    }
    return {"network": "n", "meta": {}, "tensors": [entry]}


def test_roundtrip_keeps_order_params_and_chunks():
    data = write_container("net", payloads(), {"coder": "ans", "k": [1, 2]})
    manifest, chunks = read_container(data)
    assert manifest.network == "net" and manifest.meta == {"coder": "ans", "k": [1, 2]}
    assert manifest.version == FORMAT_VERSION and manifest.file_bytes == len(data)
    assert [t.name for t in manifest.tensors] == ["a", "b.weight", "c"]
    b = manifest.tensors[1]
    assert b.codec == "future" and b.params == {"x": [1, 2], "y": "z"} and b.shape == (4,)
    assert [c.kind for c in b.chunks] == ["first", "second", "third"]
    assert [bytes(v) for v in chunks[1]] == [b"\x01\x02", b"", b"xyz"]
    assert manifest.tensors[2].shape == () and manifest.tensors[2].size == 1
    assert chunks[0][0].readonly


def test_header_layout():
    data = write_container("net", payloads())
    magic, version, coding, reserved, length, crc = struct.unpack_from("<8sHBBII", data)
    assert magic == b"\x89WSZ\r\n\x1a\n" and version == 1 and reserved == 0
    assert crc == zlib.crc32(data[20 : 20 + length])
    # the smallest coding of this manifest: 526 B as JSON, 244 B zlib, 132 B against the
    # dictionary, so the writer must choose MANIFEST_DICT
    text = manifest_text(coding, data[20 : 20 + length])
    assert (len(text), len(zlib.compress(text, 9)), len(dict_deflate(text))) == (526, 244, 132)
    assert (coding, length) == (MANIFEST_DICT, 132)


def test_large_manifests_are_deflated():
    many = [
        TensorPayload(
            f"layer{i}.bn.running_mean", (1,), "float32", "raw", {}, (("data", bytes(4)),)
        )
        for i in range(200)
    ]
    data = write_container("net", many)
    assert data[10] == MANIFEST_DICT
    manifest, _ = read_container(data)
    assert len(manifest.tensors) == 200 and manifest.manifest_bytes < 2000


def test_the_dictionary_is_pinned():
    # part of the format: a changed dictionary misreads every coding-2 file written before
    assert len(MANIFEST_DICTIONARY_2) == 1735
    digest = hashlib.sha256(MANIFEST_DICTIONARY_2).hexdigest()
    assert digest == "5ec671263a490cdb3e7d472f850f7c3c9e3ac1257bd907538f802956bb459b27"


@pytest.mark.parametrize("coding", [MANIFEST_JSON, MANIFEST_ZLIB, MANIFEST_DICT])
def test_every_manifest_coding_reads_the_same(coding):
    # files written before coding 2 existed (0 and 1) keep reading
    data = craft(document(), bytes(8), coding=coding)
    assert data[10] == coding
    manifest, chunks = read_container(data)
    reference, _ = read_container(craft(document(), bytes(8)))
    assert manifest.tensors == reference.tensors and manifest.network == reference.network
    assert bytes(chunks[0][0]) == bytes(8)


def small_model_entries() -> list[dict]:
    """The manifest entries of a LeNet-5 Deep Compression file (fixed lengths and crc32s)."""
    entries = []
    for i, (layer, shape, nnz) in enumerate(
        [("conv1", [6, 1, 5, 5], 99), ("conv2", [16, 6, 5, 5], 360), ("fc1", [120, 400], 3120),
         ("fc2", [84, 120], 756), ("fc3", [10, 84], 168)]
    ):  # fmt: skip
        entries.append(
            {"name": f"{layer}.bias", "shape": shape[:1], "dtype": "float16", "codec": "raw",
             "params": {}, "chunks": [{"kind": "data", "bytes": 2 * shape[0],
                                       "crc32": 7919 * i + 13}]}
        )  # fmt: skip
        positions = {"positions": "gaps", "gap_bits": 1 + i, "symbols": nnz + 17 * i}
        entries.append(
            {"name": f"{layer}.weight", "shape": shape, "dtype": "float32",
             "codec": "sparse_shared",
             "params": {"k": 16, "k_eff": 16, "nnz": nnz, **positions,
                        "codebook_dtype": "fp16", "coder": "ans"},
             "chunks": [{"kind": kind, "bytes": 32 + nnz // (j + 1), "crc32": 104729 * i + j}
                        for j, kind in enumerate(("codebook", "positions", "indices"))]}
        )  # fmt: skip
    return entries


def test_the_dictionary_coding_shrinks_a_small_models_manifest():
    entries = small_model_entries()
    coding, stored = pack_manifest("lenet5_fashionmnist", entries)
    text = json.dumps(
        {"network": "lenet5_fashionmnist", "meta": {}, "tensors": entries}, separators=(",", ":")
    ).encode()
    assert coding == MANIFEST_DICT and manifest_text(coding, stored) == text
    assert len(stored) + 200 < len(zlib.compress(text, 9))  # about 250 bytes saved


def test_manifest_text_refuses_what_the_reader_refuses():
    text = json.dumps(document()).encode()
    stored = dict_deflate(text)
    assert manifest_text(MANIFEST_DICT, stored) == text
    with pytest.raises(FormatError, match="truncated or padded"):
        manifest_text(MANIFEST_DICT, stored[:-1])
    with pytest.raises(FormatError, match="truncated or padded"):
        manifest_text(MANIFEST_DICT, stored + b"\x00")
    with pytest.raises(FormatError, match="does not inflate"):
        manifest_text(MANIFEST_DICT, b"\xff\xff\xff\xff")
    with pytest.raises(FormatError, match="incorrect header check"):
        manifest_text(MANIFEST_ZLIB, stored)  # coding 2's bytes under the wrong coding
    with pytest.raises(FormatError, match="manifest coding 3"):
        manifest_text(3, text)


def test_write_rejects_duplicates_and_non_json_meta():
    twice = [payloads()[0], payloads()[0]]
    with pytest.raises(UserError, match="'a' appears twice"):
        write_container("net", twice)
    with pytest.raises(UserError, match="plain JSON"):
        write_container("net", payloads(), {"bad": float("nan")})
    with pytest.raises(UserError, match="plain JSON"):
        write_container("net", payloads(), {"bad": object()})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file: not a weightshare model file"),
        (b"PK\x03\x04", "bad magic"),
        (MAGIC, "truncated model file"),
        (b"\x89WSZ\r\n\x1a\nxxxxxxxxxxxxxxxxxxxxx", "unsupported model file version"),
    ],
)
def test_not_a_model_file(data, message):
    with pytest.raises(FormatError, match=message):
        read_container(data)


def test_header_field_checks():
    good = craft(document(), bytes(8))
    read_container(good)
    with pytest.raises(FormatError, match="version 2"):
        read_container(craft(document(), bytes(8), version=2))
    with pytest.raises(FormatError, match=r"^corrupt model file header \(flags 1\)$"):
        read_container(craft(document(), bytes(8), reserved=1))
    with pytest.raises(FormatError) as raised:
        read_container(craft(document(), bytes(8), coding=3))  # a later dictionary, say
    assert str(raised.value) == (
        "unsupported manifest coding 3 in the model file header; this weightshare reads "
        "codings 0, 1, 2 (a newer weightshare wrote the file, or it is corrupt)"
    )
    with pytest.raises(FormatError, match="manifest length"):
        read_container(craft(document(), bytes(8), length=MAX_MANIFEST_BYTES + 1))
    with pytest.raises(FormatError, match="manifest ends at byte"):
        read_container(craft(document(), b"", length=10_000))
    with pytest.raises(FormatError, match="checksum mismatch in the manifest"):
        read_container(craft(document(), bytes(8), crc=1))


def test_payload_checks():
    with pytest.raises(FormatError, match="truncated model file"):
        read_container(craft(document(), bytes(7)))
    with pytest.raises(FormatError, match="trailing bytes"):
        read_container(craft(document(), bytes(9)))
    with pytest.raises(FormatError, match="checksum mismatch in chunk 'data' of tensor 't'"):
        read_container(craft(document(), b"\0\0\0\0\0\0\0\1"))


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"name": ""}, "'name' must be a string"),
        ({"name": 7}, "'name' must be a string"),
        ({"shape": [-1]}, "'shape'"),
        ({"shape": [True]}, "'shape'"),
        ({"shape": [2.0]}, "'shape'"),
        ({"shape": [1] * 9}, "'shape'"),
        ({"shape": "2"}, "'shape'"),
        ({"dtype": "complex64"}, "unknown dtype"),
        ({"codec": None}, "'codec'"),
        ({"params": []}, "'params'"),
        ({"chunks": {}}, "'chunks'"),
        ({"chunks": [{"kind": "data", "bytes": -8, "crc32": 0}]}, "a chunk needs"),
        ({"chunks": [{"kind": "data", "bytes": 8, "crc32": 2**32}]}, "a chunk needs"),
        ({"chunks": [{"kind": "d"}] * 17}, "'chunks'"),
    ],
)
def test_manifest_field_checks(tensor, message):
    with pytest.raises(FormatError, match=message):
        read_container(craft(document(**tensor), bytes(8)))


def test_manifest_top_level_checks():
    for bad, message in [
        ([], "not a JSON object"),
        ({"network": 1, "meta": {}, "tensors": []}, "'network'"),
        ({"network": "n", "meta": [], "tensors": []}, "'meta'"),
        ({"network": "n", "meta": {}, "tensors": {}}, "'tensors'"),
    ]:
        with pytest.raises(FormatError, match=message):
            read_container(craft(bad))
    twice = document()
    twice["tensors"] *= 2
    with pytest.raises(FormatError, match="appears twice"):
        read_container(craft(twice, bytes(16)))


def test_manifest_json_hazards():
    def raw(text: bytes) -> bytes:
        return (
            HEADER.pack(MAGIC, FORMAT_VERSION, MANIFEST_JSON, 0, len(text), zlib.crc32(text)) + text
        )

    cases = [
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"network": "n", "network": "m", "meta": {}, "tensors": []}', "duplicate key"),
        (b'{"network": NaN}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (
            b'{"network": "n", "meta": {}, "tensors": [], "x": ' + b"9" * 5000 + b"}",
            "not valid JSON",
        ),
    ]
    for text, message in cases:
        with pytest.raises(FormatError, match=message):
            read_container(raw(text))


def test_deflate_bomb_is_refused():
    bomb = zlib.compress(b" " * (MAX_MANIFEST_BYTES + 10), 9)
    data = HEADER.pack(MAGIC, FORMAT_VERSION, MANIFEST_ZLIB, 0, len(bomb), zlib.crc32(bomb)) + bomb
    with pytest.raises(FormatError, match="inflates past"):
        read_container(data)
    bomb = dict_deflate(b" " * (MAX_MANIFEST_BYTES + 10))
    data = HEADER.pack(MAGIC, FORMAT_VERSION, MANIFEST_DICT, 0, len(bomb), zlib.crc32(bomb)) + bomb
    with pytest.raises(FormatError, match="inflates past"):
        read_container(data)
    garbage = b"\x78\x9c garbage"
    data = HEADER.pack(MAGIC, FORMAT_VERSION, MANIFEST_ZLIB, 0, len(garbage), zlib.crc32(garbage))
    with pytest.raises(FormatError, match="does not inflate"):
        read_container(data + garbage)


def test_declared_elements_are_bounded():
    huge = document(shape=[1 << 40, 1 << 40])
    with pytest.raises(FormatError, match=r"more than \d+ scalars"):
        read_container(craft(huge, bytes(8)))
    with pytest.raises(FormatError, match="more than 1 scalars"):
        read_container(craft(document(), bytes(8)), max_elements=1)
