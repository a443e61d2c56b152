"""The search space: per-layer k grids, and candidates (layer name -> choice) as plain data.

A :class:`Candidate` maps a subset of the clusterable layers to their **choice**; layers it does
not name stay fp32. ``FP32`` (0) is the grid value that means "not clustered". A choice is the
int ``k`` (the layer shared with ``k`` values), or, with ``--prune-grid``, the string ``"k@s"``:
the layer magnitude-pruned to sparsity ``s`` (no retraining), its survivors shared with ``k``
values (:func:`choice`, :func:`parse_choice`). Unpruned choices stay plain ints, so a run
without the prune grid has exactly the keys, Optuna parameters and results it always had.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from weightshare.errors import UserError
from weightshare.types import K_MAX
from weightshare.validation import check_int

FP32 = 0
PRUNE_MARK = "@"
K_MIN = 2  # k = 1 (the layer mean) is allowed in evaluate, not searched
# Powers of two from 2 to 256 plus the values halfway (in bits) between them.
DEFAULT_K_GRID = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


@dataclass(frozen=True)
class Candidate:
    """One weight-sharing configuration.

    Attributes:
        k: sorted tuple of (layer name, choice) pairs: an int k >= 1, or ``"k@s"`` for a layer
            pruned to sparsity ``s`` first (:func:`choice`); absent layers stay fp32.
    """

    k: tuple[tuple[str, int | str], ...]

    @staticmethod
    def of(mapping: Mapping[str, int | str]) -> Candidate:
        """Build from a mapping layer -> choice; entries equal to ``FP32`` are dropped.

        A string choice is put in its one spelling (:func:`choice`): ``"16"`` and ``"16@0.0"``
        become ``16``, ``"16@0.50"`` becomes ``"16@0.5"``, so equal settings make equal
        candidates (and keys).

        Raises:
            UserError: a string that is not a choice (:func:`parse_choice`).
        """
        kept = (
            (n, choice(*parse_choice(v)) if isinstance(v, str) else int(v))
            for n, v in mapping.items()
        )
        return Candidate(tuple(sorted((n, v) for n, v in kept if v != FP32)))

    def as_dict(self) -> dict[str, int | str]:
        """layer -> choice (an int k, or ``"k@s"`` for a pruned layer)."""
        return dict(self.k)

    def settings(self) -> dict[str, tuple[int, float]]:
        """layer -> (k, sparsity), sparsity 0.0 for a layer shared without pruning."""
        return {n: parse_choice(v) for n, v in self.k}

    @staticmethod
    def parse(key: str) -> Candidate:
        """Inverse of :meth:`key`; also reads the ``k`` column of ``trials.csv``, whose pairs
        are joined by ``;`` (:meth:`csv_cell`).

        Raises:
            UserError: a key that joins its layers with both ``,`` and ``;``.
        """
        if key == "fp32":
            return Candidate(())
        if "," in key and ";" in key:
            raise UserError(
                "a candidate joins its layers with ',' (a key) or ';' (a CSV cell), not both; "
                f"got {key!r}"
            )
        pairs = (item.rsplit("=", 1) for item in re.split("[,;]", key))
        return Candidate.of(dict(pairs))  # each choice parsed and put in its one spelling

    def key(self) -> str:
        """A stable string id, e.g. ``conv1=4,fc1=16@0.5`` (``fp32`` for the empty candidate)."""
        return self._joined(",")

    def csv_cell(self) -> str:
        """:meth:`key` with ``;`` between the layers, e.g. ``conv1=4;fc1=16@0.5``: a CSV cell
        that needs no quoting (the ``k`` column of ``trials.csv``, as ``pareto.csv``'s)."""
        return self._joined(";")

    def _joined(self, separator: str) -> str:
        return separator.join(f"{n}={v}" for n, v in self.k) or "fp32"


def choice(k: int, sparsity: float = 0.0) -> int | str:
    """One layer's choice: ``k`` when the layer is only shared, ``"k@s"`` when it is pruned to
    sparsity ``s`` first (``repr`` of the float, so it parses back exactly)."""
    return int(k) if sparsity == 0 else f"{int(k)}{PRUNE_MARK}{float(sparsity)!r}"


def parse_choice(value: int | str) -> tuple[int, float]:
    """``(k, sparsity)`` of a choice (:func:`choice`): ``16`` -> (16, 0.0), ``"16@0.5"`` ->
    (16, 0.5), ``"16"`` -> (16, 0.0).

    Raises:
        UserError: not an int k in [1, K_MAX] or ``"k@s"`` with s in [0, 1).
    """
    text = str(value)
    k_text, mark, s_text = text.partition(PRUNE_MARK)
    try:
        if isinstance(value, bool) or not isinstance(value, int | str) or (mark and not s_text):
            raise ValueError
        k, s = int(k_text), float(s_text) if mark else 0.0
    except ValueError:
        raise UserError(
            f"a layer's choice must be an int k or 'k{PRUNE_MARK}sparsity' (e.g. 16 or "
            f"'16{PRUNE_MARK}0.5'); got {value!r}"
        ) from None
    if not 1 <= k <= K_MAX or not 0.0 <= s < 1.0:
        raise UserError(
            f"a layer's choice needs k in [1, {K_MAX}] and sparsity in [0, 1); got {value!r}"
        )
    return k, s


def parse_prune_grid(text: str) -> tuple[float, ...]:
    """``"0,0.5,0.9"`` -> (0.0, 0.5, 0.9) (``--prune-grid``): sorted distinct sparsities in
    [0, 1); UserError on anything else."""
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        values = None
    if not values or not all(0.0 <= v < 1.0 for v in values):
        raise UserError(
            f"--prune-grid must be comma-separated sparsities in [0, 1), e.g. 0,0.5,0.7,0.9; "
            f"got {text!r}"
        )
    return tuple(values)


def layer_choices(
    grid: Sequence[int], prune_grid: Sequence[float], n_weights: int
) -> tuple[int | str, ...]:
    """A layer's choices: without a prune grid its k grid (:func:`layer_grid`); with one, every
    (k, sparsity) pair, sparsity by sparsity, each with the k of the grid that do not exceed the
    layer's survivors (a sparsity that would remove every weight is left out)."""
    if not prune_grid:
        return layer_grid(grid, n_weights)
    out: list[int | str] = []
    for s in prune_grid:
        survivors = n_weights - round(s * n_weights)
        if survivors >= 1:
            out += [choice(k, s) for k in layer_grid(grid, survivors)]
    return tuple(out)


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
