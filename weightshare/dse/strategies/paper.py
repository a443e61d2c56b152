"""The seed's algorithm (Dupuis et al., ASP-DAC 2022) with its bugs fixed: the 81-value grid
2..1024, step 1 on top-1 keeping per layer the most accurate k of each index bit width among
those passing alone (ratio relaxed by 0.9 up to 4 times), then NSGA-II with population 100 on
real evaluations (100 generations: 10,000 trials)."""

from __future__ import annotations

import numpy as np

from weightshare.dse import sensitivity
from weightshare.dse.space import FP32
from weightshare.dse.strategies.base import Explorer, nsga2_sampler

# The seed's grid: the 81 distinct ints of numpy.logspace(1, 10, 100, base=2).
PAPER_K_GRID = tuple(int(k) for k in np.unique(np.logspace(1, 10, 100, base=2).astype(int)))


class Paper:
    default_trials = 10_000
    default_k_grid = PAPER_K_GRID
    needs_step_one = True

    def explore(self, explorer: Explorer) -> None:
        cfg = explorer.config
        accs = {
            layer: {k: r.accuracy for k, r in by_k.items()}
            for layer, by_k in explorer.one_layer().items()
        }
        kept, _ = sensitivity.paper_options(accs, explorer.base, cfg.accuracy_ratio)
        choices = {layer: kept.get(layer, [FP32]) for layer in explorer.grids}
        sampler = nsga2_sampler(cfg, population_size=100)
        explorer.search(choices, [], sampler)
