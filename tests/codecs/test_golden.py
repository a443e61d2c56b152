"""Golden outputs: the exact bytes of a fixed small model file, per coder.

A change to these hashes is a change of the file format (or of constriction's coder, which
bumps its version when its output changes): bump ``FORMAT_VERSION`` or keep old files readable,
update docs/format.md, then the hashes below. The manifest is deflated (coding 2: against the
preset dictionary; the JSON, hence the logical hash, is what coding 1 stored before), and another
zlib (zlib-ng) may deflate it differently: then the file hash is skipped, while the hash of the
inflated manifest plus the payload must still match.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np
import pytest

from weightshare.codecs import decode_model, encode_model
from weightshare.codecs.container import HEADER, MANIFEST_ZLIB, manifest_text
from weightshare.types import SharedWeights

# (coder, codebook dtype) -> (sha256 of the file, sha256 of inflated manifest + payload)
GOLDEN = {
    ("ans", "fp32"): (
        "8f37d54bdd1c51df42a87bdd2b70f4d2abd6f5b44d52f3686a4723893ec16a76",
        "e2a5e11ce453b5e4f4e96ab2125023fdd6f57e2bff2a183a98be4da46875f93f",
    ),
    ("ans", "fp16"): (
        "a3c0c8bd5a9a08c8f27ed854c49497da8edf1c6d0e0ac8eed2f964959a5af8fb",
        "01d94909f223755c9b7a823fc68846449d4064817bf1863d0d4f4beb8e3a4854",
    ),
    ("huffman", "fp32"): (
        "e09b3db733ab0cbda2ec72c1bed21d8cfdd2c3e61826f8773009a731286aad70",
        "8a2fef7aa120c517be0289d1a83bbe4dab91cdecc66433f4adc9fec5963a1cdb",
    ),
    ("fixed", "fp32"): (
        "74700413065dbbf6542c8db267adcf69c1f4cd03a4b0c9b6afaf659566d2a024",
        "5de06b641e03c9d7d475bc00af58ffc440d0491f6ca78af0f25e93822c1b73a4",
    ),
}

# The same files as the writer made them before manifest coding 2 existed (coding 1: zlib), kept
# in tests/codecs/golden/: their sha256 were GOLDEN's file hashes until then.
CODING_1_FILES = {
    ("ans", "fp32"): "f48a19525ad9f3aa433668eb0ba1c06f7ad78dc168e9986b97ef5a656680b5d8",
    ("ans", "fp16"): "e70ca5ef0c30eb5f9d0f34d58e07ba5132c63ff18ff013b9b4182177fad15e69",
    ("huffman", "fp32"): "8f96cad0d7a70031ef64ac4631cdd2e7733ece2711dd0a84355a8edc1fe8bb26",
    ("fixed", "fp32"): "4446fd8d9280e9278514e489fd2b97bee91ad2d6288b859f872ab10ae5b8b4af",
}
GOLDEN_DIR = Path(__file__).parent / "golden"


def _shared(codebook: np.ndarray, indices: np.ndarray, granularity: str) -> SharedWeights:
    codebook = codebook.astype(np.float32)
    indices = indices.astype(np.uint8)
    codebook.setflags(write=False)
    indices.setflags(write=False)
    return SharedWeights(codebook, indices, 0.0, codebook.shape[1], granularity, "linear")


def golden_input() -> tuple[dict[str, np.ndarray], dict[str, SharedWeights]]:
    """A fixed model built from integer arithmetic only (no RNG, no k-means)."""
    i72, i240 = np.arange(72), np.arange(240)
    state = {
        "conv.weight": (((i72 * 37) % 101 - 50) / 100).astype(np.float32).reshape(4, 2, 3, 3),
        "conv.bias": np.array([0.5, -0.25, 0.125, 0.0], dtype=np.float32),
        "bn.running_var": np.linspace(0.5, 2.0, 4).astype(np.float32),
        "bn.num_batches_tracked": np.array(100, dtype=np.int64),
        "fc.weight": (((i240 * 13) % 29 - 14) / 20).astype(np.float32).reshape(10, 24),
        "fc.bias": np.zeros(10, dtype=np.float32),
    }
    conv = _shared(
        np.array([[-0.4, 0.0, 0.4], [-0.3, 0.1, 0.2], [-0.5, -0.1, 0.3], [-0.2, 0.05, 0.45]]),
        (i72 * 7 % 13 % 3).reshape(4, 2, 3, 3),
        "channel",
    )
    fc = _shared(np.linspace(-0.7, 0.7, 8)[None, :], ((i240**2) % 17 % 8).reshape(10, 24), "layer")
    return state, {"conv.weight": conv, "fc.weight": fc}


def golden_file(coder: str, codebook_dtype: str) -> bytes:
    """The model file this writer makes of :func:`golden_input`."""
    state, shared = golden_input()
    return encode_model(
        state,
        shared,
        network="golden",
        coder=coder,
        codebook_dtype=codebook_dtype,
        meta={"purpose": "golden test"},
    )


@pytest.mark.parametrize(("coder", "codebook_dtype"), list(GOLDEN))
def test_encoded_bytes_are_pinned(coder, codebook_dtype):
    _, shared = golden_input()
    data = golden_file(coder, codebook_dtype)
    file_hash, logical_hash = GOLDEN[coder, codebook_dtype]
    length = HEADER.unpack_from(data)[4]
    stored = data[HEADER.size : HEADER.size + length]
    logical = manifest_text(data[10], stored) + data[HEADER.size + length :]
    got = hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(logical).hexdigest() == logical_hash, (
        f"{coder}/{codebook_dtype}: the manifest or payload changed ({len(data)} bytes, "
        f"file sha256 {got}, logical sha256 {hashlib.sha256(logical).hexdigest()})"
    )
    decoded = decode_model(data).state
    if codebook_dtype == "fp32":
        for name, sw in shared.items():
            np.testing.assert_array_equal(decoded[name], sw.dequantize())
    if got != file_hash:  # same content: only the deflated manifest differs
        pytest.skip(f"this zlib ({zlib.ZLIB_RUNTIME_VERSION}) deflates differently")


@pytest.mark.parametrize(("coder", "codebook_dtype"), list(CODING_1_FILES))
def test_files_written_before_coding_2_decode_to_the_same_model(coder, codebook_dtype):
    data = (GOLDEN_DIR / f"coding1_{coder}_{codebook_dtype}.wsz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == CODING_1_FILES[coder, codebook_dtype]
    assert data[10] == MANIFEST_ZLIB
    new = golden_file(coder, codebook_dtype)
    assert new[10] != MANIFEST_ZLIB and len(new) < len(data)
    old_model, new_model = decode_model(data), decode_model(new)
    assert old_model.manifest.tensors == new_model.manifest.tensors
    assert old_model.manifest.meta == new_model.manifest.meta == {"purpose": "golden test"}
    assert list(old_model.state) == list(new_model.state)
    for key, value in new_model.state.items():
        assert old_model.state[key].dtype == value.dtype
        np.testing.assert_array_equal(old_model.state[key], value)
