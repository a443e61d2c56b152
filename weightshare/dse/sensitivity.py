"""Step 1 ("local optimization"): each layer alone at each k, the other layers pristine.

From those one-layer evaluations, each layer keeps its **options**: the (size, loss) points that
pass the accuracy target alone and are Pareto-efficient (no other passing k of the layer is both
smaller and more accurate), plus fp32 (k = ``FP32``, loss 0) so a layer that tolerates no
sharing can stay whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from weightshare.dse.space import FP32, Candidate


@dataclass(frozen=True)
class Option:
    """One choice for one layer.

    Attributes:
        k: shared values (``FP32`` = not clustered).
        bits: the layer's size in bits under the chosen size model.
        loss: baseline accuracy minus the accuracy with only this layer shared, as a fraction
            (negative when sharing happened to help on the search images).
    """

    k: int
    bits: float
    loss: float


def one_layer_candidates(grids: Mapping[str, Sequence[int]]) -> list[Candidate]:
    """Every (layer, k) of the grids as a candidate that shares that layer only."""
    return [Candidate.of({layer: k}) for layer, ks in grids.items() for k in ks]


def pareto_options(points: Iterable[Option], fp32_bits: float, max_loss: float) -> list[Option]:
    """The layer's options: passing (``loss <= max_loss``), Pareto-efficient points + fp32.

    Args:
        points: one Option per evaluated k of the layer.
        fp32_bits: the layer's size left in fp32.
        max_loss: the largest loss that still meets the accuracy target.

    Returns:
        Options sorted by increasing size, each strictly lower in loss than the previous one.
    """
    passing = sorted((p for p in points if p.loss <= max_loss), key=lambda p: (p.bits, p.loss))
    passing.append(Option(FP32, fp32_bits, 0.0))
    kept: list[Option] = []
    for point in passing:
        if not kept or point.loss < kept[-1].loss:
            kept.append(point)
    return kept


def paper_options(
    accuracies: Mapping[str, Mapping[int, float]],
    baseline: float,
    ratio: float,
    *,
    relax: float = 0.9,
    max_relaxations: int = 4,
) -> tuple[dict[str, list[int]], float]:
    """The seed's step-1 filter (Dupuis et al.): per layer and index bit width
    ``ceil(log2 k)``, the most accurate k among those with ``accuracy > ratio * baseline``.

    If a layer has no such k, ``ratio`` is multiplied by ``relax`` and the filter rerun, at most
    ``max_relaxations`` times (0.99 -> 0.891 -> ...). Unlike the seed, a layer still left
    without a k then keeps fp32 (``[FP32]``) instead of crashing step 2.

    Args:
        accuracies: layer -> {k: accuracy with only that layer shared}.
        baseline: the fp32 accuracy on the same images.
        ratio: the MLPerf ratio (0.99 heavy, 0.98 light).

    Returns:
        (layer -> kept k values sorted by bit width, the ratio finally used).
    """
    for _ in range(max_relaxations + 1):
        kept = {}
        for layer, by_k in accuracies.items():
            best: dict[int, tuple[float, int]] = {}
            for k, acc in sorted(by_k.items()):
                if acc > ratio * baseline:
                    bits = (k - 1).bit_length()
                    if bits not in best or acc > best[bits][0]:
                        best[bits] = (acc, k)
            kept[layer] = [best[b][1] for b in sorted(best)]
        if all(kept.values()):
            break
        ratio *= relax
    return {layer: ks or [FP32] for layer, ks in kept.items()}, ratio
