"""The committed hostile corpus (tests/codecs/hostile/): each file ends in one error line.

Every file once crashed ``--mode decode`` or ``--mode residual_decode`` with a traceback (issue
15.3: a zero dimension beside dimensions whose product passes 2**63; a Keras network decoded to
``.onnx``) or probes a neighbouring bound (negative dimension, rank 9). The command line must
exit 2 with one ``error:`` line and write nothing.
"""

from __future__ import annotations

import pytest

from tests.codecs.hostile_corpus import CASES, CORPUS_DIR
from tests.conftest import one_line_error, run_main
from weightshare.codecs import decode_model
from weightshare.codecs.residual import decode_residual
from weightshare.errors import UserError


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_committed_file_is_what_the_builder_writes(case):
    assert (CORPUS_DIR / case.name).read_bytes() == case.build()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_command_line_refuses_in_one_line(case, tmp_path):
    file = CORPUS_DIR / case.name
    out = tmp_path / "out"
    argv = [arg.format(file=file, out=out) for arg in case.argv]
    line = one_line_error(run_main(*argv, "--threads", "1", timeout=120))
    assert line.startswith(f"error: {file}: ") or line.startswith(f"error: {file} ")
    assert case.words in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.argv[1] != "residual_decode"], ids=lambda c: c.name
)
def test_library_decoders_refuse_or_decode(case):
    """``decode_model`` refuses every shape case; the Keras file decodes (only .onnx is refused)."""
    data = case.build()
    if case.name.startswith("keras"):
        assert decode_model(data).state["w"].tolist() == [0.0, 0.0]
        return
    with pytest.raises(UserError, match=case.words):
        decode_model(data)
    with pytest.raises(UserError, match=case.words):
        decode_residual(data, None)
