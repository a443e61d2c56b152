"""Step 1 ("local optimization"): each layer alone at each k, the other layers pristine.

The damage of each one-layer evaluation is the mean KL divergence of the softmax outputs from the
fp32 model's on the same images (:mod:`weightshare.dse.damage`): on a few hundred images it
reproduces the whole-split curve where top-1 is lost in the noise. From those evaluations each
layer keeps its **options**: the measured (size, KL) points that are Pareto-efficient (no other
k of the layer is both smaller and less damaging), plus fp32 (k = ``FP32``, KL 0) so a layer that
tolerates no sharing can stay whole. The measured points are kept as they are: KL is not always
monotone in k (the k-means solution at a larger k is sometimes worse for the output).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from weightshare.dse.space import FP32, Candidate, parse_choice


@dataclass(frozen=True)
class Option:
    """One choice for one layer.

    Attributes:
        k: the layer's choice: shared values (``FP32`` = not clustered), or ``"k@s"`` with a
            prune grid (:func:`~weightshare.dse.space.choice`).
        bits: the layer's size in bits under the chosen size model.
        damage: mean KL divergence (nats) from the fp32 outputs with only this layer shared.
    """

    k: int | str
    bits: float
    damage: float


def one_layer_candidates(grids: Mapping[str, Sequence[int | str]]) -> list[Candidate]:
    """Every (layer, choice) of the grids as a candidate that shares that layer only."""
    return [Candidate.of({layer: k}) for layer, ks in grids.items() for k in ks]


def pareto_options(points: Iterable[Option], fp32_bits: float) -> list[Option]:
    """The layer's options: the Pareto-efficient (size, damage) points + fp32.

    Args:
        points: one Option per evaluated k of the layer.
        fp32_bits: the layer's size left in fp32.

    Returns:
        Options sorted by increasing size, each strictly less damaging than the previous one.
    """
    ordered = sorted(points, key=lambda p: (p.bits, p.damage))
    ordered.append(Option(FP32, fp32_bits, 0.0))
    kept: list[Option] = []
    for point in ordered:
        if not kept or point.damage < kept[-1].damage:
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
    ``ceil(log2 k)``, the most accurate k among those with ``accuracy > ratio * baseline``
    (with a prune grid: per index bit width and sparsity, the most accurate choice).

    If a layer has no such k, ``ratio`` is multiplied by ``relax`` and the filter rerun, at most
    ``max_relaxations`` times (0.99 -> 0.891 -> ...). Unlike the seed, a layer still left
    without a k then keeps fp32 (``[FP32]``) instead of crashing step 2.

    Args:
        accuracies: layer -> {choice: accuracy with only that layer shared}.
        baseline: the fp32 accuracy on the same images.
        ratio: the MLPerf ratio (0.99 heavy, 0.98 light).

    Returns:
        (layer -> kept k values sorted by bit width, the ratio finally used).
    """
    for _ in range(max_relaxations + 1):
        kept = {}
        for layer, by_k in accuracies.items():
            best: dict[tuple[int, float], tuple[float, int | str]] = {}
            for k, acc in sorted(by_k.items(), key=lambda item: parse_choice(item[0])):
                if acc > ratio * baseline:
                    n, sparsity = parse_choice(k)
                    group = ((n - 1).bit_length(), sparsity)
                    if group not in best or acc > best[group][0]:
                        best[group] = (acc, k)
            kept[layer] = [best[b][1] for b in sorted(best)]
        if all(kept.values()):
            break
        ratio *= relax
    return {layer: ks or [FP32] for layer, ks in kept.items()}, ratio
