"""Candidate sizes: the whole model in bits, and the seed's fixed-length compression ratio.

A clusterable layer the candidate leaves out stays fp32 (32 bits per weight); the other
tensors (biases, BatchNorm, ...) are always fp32.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from weightshare.dse.size import BASELINE_BITS


@dataclass(frozen=True)
class ModelLayout:
    """What sizes depend on.

    Attributes:
        n_weights: clusterable layer name -> number of weights, in model order.
        n_unclustered: scalars stored outside clusterable layers (always fp32).
    """

    n_weights: dict[str, int]
    n_unclustered: int

    @property
    def original_bits(self) -> int:
        """Size of the fp32 model: 32 bits per stored scalar."""
        return BASELINE_BITS * (sum(self.n_weights.values()) + self.n_unclustered)

    def layer_bits(self, layer_bits: Mapping[str, float]) -> float:
        """Bits of the clusterable layers: the given bits per clustered layer, 32/weight else."""
        return float(
            sum(layer_bits.get(name, BASELINE_BITS * n) for name, n in self.n_weights.items())
        )

    def model_bits(self, layer_bits: Mapping[str, float]) -> float:
        """Bits of the whole model: clusterable layers plus the fp32 unclustered tensors."""
        return self.layer_bits(layer_bits) + BASELINE_BITS * self.n_unclustered

    def ratio_layers(self, layer_bits: Mapping[str, float]) -> float:
        """The seed's compression ratio ``sum(32 W_l) / sum(bits_l)`` over all clusterable
        layers (a layer left fp32 counts at 32 bits per weight, ratio 1)."""
        return BASELINE_BITS * sum(self.n_weights.values()) / self.layer_bits(layer_bits)

    def ratio_model(self, layer_bits: Mapping[str, float]) -> float:
        """Whole-model ratio: fp32 model bits over the candidate's model bits."""
        return self.original_bits / self.model_bits(layer_bits)
