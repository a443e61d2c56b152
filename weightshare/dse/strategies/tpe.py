"""Optuna's TPE over every layer's whole grid (fp32 included), no step 1."""

from __future__ import annotations

from weightshare.dse.strategies.base import Explorer, whole_grids


class TPE:
    default_trials = 100
    default_k_grid = None
    needs_step_one = False

    def explore(self, explorer: Explorer) -> None:
        import optuna

        sampler = optuna.samplers.TPESampler(seed=explorer.config.seed)
        explorer.search(whole_grids(explorer), [], sampler)
