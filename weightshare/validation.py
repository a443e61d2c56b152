"""Parameter checks for the public edge, with scikit-learn style messages.

Every message names the parameter, the allowed values and what was received, e.g.
``--k must be an int in [1, 65536]; got 0``. Past these checks, code trusts its inputs.
"""

from __future__ import annotations

from numbers import Integral

from weightshare.errors import UserError


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
