"""Start (or join) Ray for the exploration, with the package importable in every worker."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from weightshare.errors import UserError, first_line

ROOT = Path(__file__).resolve().parents[2]


def start(address: str | None, num_cpus: int | None) -> None:
    """``ray.init`` once per process: a local runtime with ``num_cpus`` logical CPUs, or the
    cluster at ``address`` (``--ray-address``). Workers get this checkout on PYTHONPATH."""
    import ray

    if ray.is_initialized():
        return
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    try:
        ray.init(
            address=address,
            num_cpus=None if address else num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(
            f"cannot start or join Ray at {address or 'a local runtime'} ({first_line(exc)})"
        ) from None
