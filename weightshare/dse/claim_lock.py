"""One claim at a time per study, across every driver sharing it: a PostgreSQL advisory lock.

Drivers that share a study on a PostgreSQL server decide who evaluates a (candidate, split) by
looking the pair up in the study and, when nobody has it, creating a RUNNING trial that marks
the claim (:meth:`weightshare.dse.trials.TrialStore.claim`). This lock makes "look up, else
claim" atomic: it is ``pg_advisory_xact_lock`` on a key derived from the study name, taken in a
transaction of a connection of its own and released when that transaction ends (or when the
connection drops: a killed driver never leaves it held).

Other storages take no lock: a SQLite study has one driver at a time (:mod:`.study_lock`), and
other servers are documented as one driver at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager


def advisory_key(study_name: str) -> int:
    """The signed 64-bit advisory-lock key of ``study_name`` (stable across machines)."""
    digest = hashlib.sha256(b"weightshare-claims:" + study_name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def is_postgresql(url: str) -> bool:
    """True for ``postgresql://`` URLs, with or without a driver (``postgresql+psycopg://``)."""
    return url.split("://", 1)[0].split("+", 1)[0] == "postgresql"


class ClaimLock:
    """The claim lock of study ``study_name`` in storage ``url`` (a no-op unless PostgreSQL).

    Not re-entrant: do not take it while holding it.
    """

    def __init__(self, url: str, study_name: str) -> None:
        self._engine = None
        self._key = advisory_key(study_name)
        if is_postgresql(url):
            import sqlalchemy

            # one connection is enough: claims are short and taken one at a time
            self._engine = sqlalchemy.create_engine(
                url, pool_size=1, max_overflow=0, pool_pre_ping=True
            )

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block (waits while another driver holds it)."""
        if self._engine is None:
            yield
            return
        import sqlalchemy

        with self._engine.begin() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._key})
            yield

    def close(self) -> None:
        """Close the lock's connection."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
