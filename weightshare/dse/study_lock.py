"""One driver per SQLite study: an OS lock on ``<study file>.lock``, beside the study.

Two drivers writing one SQLite study interleave their trials (evaluations done twice, a worse
best). The first driver holds ``fcntl.flock`` on the lock file, with its PID written inside, for
its whole run; a second is refused at once, naming that PID. The kernel drops the lock when the
holder's process ends in any way (SIGKILL included), so a stale lock file never blocks a rerun;
the file itself is left in place (deleting it could let two drivers lock two different files).

A server storage (``postgresql://...``) is not locked here: several drivers may share its study,
and Optuna's heartbeat (:mod:`weightshare.dse.trials`) tells a dead driver's trials from a live
one's.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from weightshare.errors import UserError


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URL; None for other storages and in-memory."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


@contextmanager
def hold(url: str) -> Iterator[Path | None]:
    """Hold the study lock of storage ``url`` for the ``with`` block; yields the lock file.

    Yields None (and locks nothing) for a storage that is not a SQLite file.

    Raises:
        UserError: another live process holds the lock (its PID is named), or the lock file
            cannot be created.
    """
    db = sqlite_path(url)
    if db is None:
        yield None
        return
    path = db.with_name(db.name + ".lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    except OSError as exc:
        raise UserError(f"cannot create the study lock {path} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            raise UserError(
                f"another exploration (PID {pid}) is running on the study {db}: one driver per "
                f"SQLite study; wait for it to end (or stop it: kill {pid}), or use another "
                "--log_file/--storage"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """The PID written in the lock file (the holder writes it right after locking)."""
    for _ in range(50):
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if pid:
            return pid
        time.sleep(0.01)
    return "unknown"
