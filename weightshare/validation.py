"""Parameter checks for the public edge, with scikit-learn style messages.

Every message names the parameter, the allowed values and what was received, e.g.
``--k must be an int in [1, 65536]; got 0``. Past these checks, code trusts its inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral
from typing import TypeVar

from weightshare.errors import UserError

T = TypeVar("T")


def parse_key_values(name: str, text: str, convert: Callable[[str], T], form: str) -> dict[str, T]:
    """``KEY=V,KEY=V`` -> ``{KEY: convert(V)}`` in the given order (keys stripped), e.g. the
    weight keys of ``--sparsity`` and ``--layer-bits``.

    Args:
        name: the flag, for the messages.
        text: the flag's value.
        convert: one value's text -> value; ValueError for a malformed one.
        form: what the flag takes, e.g. ``KEY=B,KEY=B (weight keys, ints)``.

    Raises:
        UserError: an item that is not ``KEY=V`` (no ``=``, an empty key, a value ``convert``
            refuses): ``{name} must be {form}; got {text!r}``; or a key given twice.
    """
    out: dict[str, T] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        try:
            if not sep or not key:
                raise ValueError(item)
            converted = convert(value)
        except ValueError:
            raise UserError(f"{name} must be {form}; got {text!r}") from None
        if key in out:
            raise UserError(f"{name} names {key!r} twice; give each weight key once; got {text!r}")
        out[key] = converted
    return out


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (no upper bound when ``high`` is None).

    Raises:
        UserError: ``value`` is a bool, not an integer, or out of range.
    """
    out_of_range = (
        isinstance(value, bool)
        or not isinstance(value, Integral)
        or value < low
        or (high is not None and value > high)
    )
    if out_of_range:
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise UserError(f"{name} must be an int {bound}; got {value!r}")
    return int(value)


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``; UserError otherwise."""
    if not isinstance(value, str) or value not in allowed:
        raise UserError(f"{name} must be one of {allowed}; got {value!r}")
    return value


def check_float(
    name: str,
    value: object,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float in the interval from ``low`` to ``high`` (None: no upper bound).

    ``low_open`` / ``high_open`` exclude that end, e.g. ``check_float("--dataset_scale", v, 0,
    1, low_open=True)`` accepts ``(0, 1]``. Ints are accepted; bools and NaN are not.

    Raises:
        UserError: ``value`` is not a real number or lies outside the interval, e.g.
            ``--dataset_scale must be a float in (0, 1]; got 0.0``.
    """
    real = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    inside = real and (value > low if low_open else value >= low)
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        if high is None:
            bound = f"{'>' if low_open else '>='} {low:g}"
        else:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise UserError(f"{name} must be a float {bound}; got {value!r}")
    return float(value)


def check_optional_choice(name: str, value: object, allowed: tuple[str, ...]) -> str | None:
    """None, or ``value`` if it is one of ``allowed``; UserError otherwise."""
    return None if value is None else check_choice(name, value, allowed)
