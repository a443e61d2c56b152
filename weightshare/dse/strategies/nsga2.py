"""Plain NSGA-II over every layer's whole grid (fp32 included), no step 1."""

from __future__ import annotations

from weightshare.dse.strategies.base import Explorer, nsga2_sampler, whole_grids


class NSGA2:
    default_trials = 100
    default_k_grid = None
    needs_step_one = False

    def explore(self, explorer: Explorer) -> None:
        cfg = explorer.config
        sampler = nsga2_sampler(cfg)
        explorer.search(whole_grids(explorer), [], sampler)
