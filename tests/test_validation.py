"""The shared parameter checks of the public edge (weightshare/validation.py)."""

from __future__ import annotations

import pytest

from weightshare.errors import UserError
from weightshare.validation import parse_key_values

FORM = "KEY=F,KEY=F (weight keys)"


def test_key_values_keep_the_order_and_strip_the_keys():
    parsed = parse_key_values("--sparsity", " fc2.weight=0.5, fc1.weight = 0.25", float, FORM)
    assert parsed == {"fc2.weight": 0.5, "fc1.weight": 0.25}
    assert list(parsed) == ["fc2.weight", "fc1.weight"]


@pytest.mark.parametrize("text", ["fc1.weight", "=0.5", "fc1.weight=0.5,", "a=1=2", "a=x"])
def test_a_malformed_item_names_the_flag_and_the_form(text):
    with pytest.raises(UserError) as raised:
        parse_key_values("--sparsity", text, float, FORM)
    assert str(raised.value) == f"--sparsity must be {FORM}; got {text!r}"


def test_a_key_given_twice_is_refused():
    with pytest.raises(UserError) as raised:
        parse_key_values("--layer-bits", "a=1,b=2,a =3", int, "KEY=B,KEY=B")
    assert str(raised.value) == (
        "--layer-bits names 'a' twice; give each weight key once; got 'a=1,b=2,a =3'"
    )
