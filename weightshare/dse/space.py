"""The search space: per-layer k grids, and candidates (layer name -> k) as plain data.

A :class:`Candidate` maps a subset of the clusterable layers to their number of shared values;
layers it does not name stay fp32. ``FP32`` (0) is the grid value that means "not clustered".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from weightshare.errors import UserError
from weightshare.types import K_MAX
from weightshare.validation import check_int

FP32 = 0
K_MIN = 2  # k = 1 (the layer mean) is allowed in evaluate, not searched
# Powers of two from 2 to 256 plus the values halfway (in bits) between them.
DEFAULT_K_GRID = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


@dataclass(frozen=True)
class Candidate:
    """One weight-sharing configuration.

    Attributes:
        k: sorted tuple of (layer name, k) pairs, k >= 1; absent layers stay fp32.
    """

    k: tuple[tuple[str, int], ...]

    @staticmethod
    def of(mapping: Mapping[str, int]) -> Candidate:
        """Build from a mapping; entries equal to ``FP32`` are dropped."""
        return Candidate(tuple(sorted((n, int(v)) for n, v in mapping.items() if v != FP32)))

    def as_dict(self) -> dict[str, int]:
        return dict(self.k)

    @staticmethod
    def parse(key: str) -> Candidate:
        """Inverse of :meth:`key`."""
        if key == "fp32":
            return Candidate(())
        pairs = (item.rsplit("=", 1) for item in key.split(","))
        return Candidate(tuple(sorted((name, int(k)) for name, k in pairs)))

    def key(self) -> str:
        """A stable string id, e.g. ``conv1=4,fc1=16`` (``fp32`` for the empty candidate)."""
        return ",".join(f"{n}={v}" for n, v in self.k) or "fp32"


def parse_k_grid(text: str) -> tuple[int, ...]:
    """``"2,4,8,16"`` -> (2, 4, 8, 16); UserError on anything else."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UserError(
            f"--k-grid must be comma-separated ints, e.g. 2,4,8,16; got {text!r}"
        ) from None
    if not values:
        raise UserError(
            f"--k-grid must be comma-separated ints in [{K_MIN}, {K_MAX}], e.g. 2,4,8,16; "
            f"got {text!r}"
        )
    if values[0] < K_MIN or values[-1] > K_MAX:
        raise UserError(f"--k-grid values must be ints in [{K_MIN}, {K_MAX}]; got {text!r}")
    return tuple(values)


def k_grid(k_min: int = 2, k_max: int = 256, grid: Sequence[int] | None = None) -> tuple[int, ...]:
    """The grid of k values: ``grid`` (default ``DEFAULT_K_GRID``) restricted to [k_min, k_max]."""
    check_int("--k-min", k_min, K_MIN, K_MAX)
    check_int("--k-max", k_max, K_MIN, K_MAX)
    if k_min > k_max:
        raise UserError(f"--k-min ({k_min}) must not exceed --k-max ({k_max})")
    values = tuple(v for v in (grid or DEFAULT_K_GRID) if k_min <= v <= k_max)
    if not values:
        raise UserError(
            f"no k of the grid {tuple(grid or DEFAULT_K_GRID)} lies in [{k_min}, {k_max}]"
        )
    return values


def select_layers(names: Iterable[str], skip_regex: str | None) -> list[str]:
    """Layer names to explore: all but those matching ``--skip-layers REGEX``."""
    names = list(names)
    if not skip_regex:
        return names
    try:
        pattern = re.compile(skip_regex)
    except re.error as exc:
        raise UserError(
            f"--skip-layers is not a valid regular expression ({exc}); got {skip_regex!r}"
        ) from None
    kept = [n for n in names if not pattern.search(n)]
    if not kept:
        raise UserError(f"--skip-layers {skip_regex!r} skips every layer ({', '.join(names)})")
    return kept


def layer_grid(grid: Sequence[int], n_weights: int) -> tuple[int, ...]:
    """The grid values usable for a layer of ``n_weights`` weights (k <= n_weights)."""
    return tuple(v for v in grid if v <= n_weights) or (min(grid),)
