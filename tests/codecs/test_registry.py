"""Coder and tensor-codec registration: explicit tables, resolved on use, no import side effect."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from weightshare.codecs.coders import CODER_NAMES, CODERS, get_coder
from weightshare.codecs.residual.codecs import MODEL_DECODERS as RESIDUAL_DECODERS
from weightshare.codecs.residual.codecs import RESIDUAL_CODECS
from weightshare.codecs.sparse import MODEL_DECODERS as SPARSE_DECODERS
from weightshare.codecs.tensors import MODEL_DECODERS, TENSOR_CODECS, get_tensor_codec
from weightshare.codecs.update import MODEL_DECODERS as UPDATE_DECODERS


@pytest.mark.parametrize("name", list(CODERS))
def test_every_registered_coder_resolves_under_its_name(name):
    assert get_coder(name).name == name
    assert get_coder(name) is get_coder(name)  # one instance per process


def test_coder_names_are_the_table():
    assert CODER_NAMES == ("ans", "huffman", "fixed")


@pytest.mark.parametrize("name", list(TENSOR_CODECS))
def test_every_registered_tensor_codec_resolves_under_its_name(name):
    codec = get_tensor_codec(name)
    assert codec.name == name and codec.chunk_kinds


def test_every_tensor_codec_defined_is_registered():
    defined = set(MODEL_DECODERS) | set(RESIDUAL_DECODERS) | set(SPARSE_DECODERS)
    assert set(TENSOR_CODECS) == defined | set(UPDATE_DECODERS)
    assert set(RESIDUAL_DECODERS) == set(RESIDUAL_CODECS)
    assert get_tensor_codec("lzma") is None


def test_importing_the_codecs_package_registers_and_imports_nothing_more():
    code = (
        "import sys\nimport weightshare.codecs\n"
        "print(','.join(m for m in ('weightshare.codecs.residual.codecs', "
        "'weightshare.codecs.ans', 'weightshare.codecs.huffman', 'weightshare.codecs.fixed') "
        "if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
