"""Output files: paths checked before any work, written atomically, a full disk as one line.

Every file the project writes goes through :func:`atomic_path` (or its two shorthands
:func:`write_bytes_atomic` / :func:`write_text_atomic`, or :func:`write_files_atomic` for a set
of files replaced together): the bytes go to a hidden temporary file
in the destination's directory (``.NAME.tmp-PID.SUFFIX``: the destination's suffix is kept for
libraries that pick a format from it, Keras' ``.keras`` or matplotlib's ``.png``), are fsync'd,
and the file is renamed into place with :func:`os.replace`. A reader sees the old file or the
new one, never a part of it; on any failure the temporary file is removed and the old file
stays as it was.

A full disk (``ENOSPC``, ``EDQUOT``, ``EFBIG``, or SQLite's "database or disk is full" under
SQLAlchemy's and Optuna's wrappers) becomes a :class:`DiskFullError`: one line naming the file
(or study) that could not be written.

:func:`check_output_dir` and :func:`check_output_file` let every mode refuse an unusable
``--log_file`` / ``--out`` before it loads or evaluates anything.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path

from weightshare.errors import UserError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_SQLITE_FULL_TEXT = "database or disk is full"


class DiskFullError(UserError):
    """No space left where an output (file or study) is written; one line, exit code 2.

    Args:
        where: the file, directory or storage that could not be written.
        reason: the system's words (``No space left on device``, ...).
    """

    def __init__(self, where: str | os.PathLike, reason: str = "No space left on device") -> None:
        self.where = str(where)
        super().__init__(
            f"the disk is full: cannot write {self.where} ({reason}); free some space and "
            "rerun the same command (an exploration resumes its study where it stopped)"
        )


def disk_full_cause(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s chain (itself, ``__cause__``, ``__context__``) that says the
    disk is full, or None.

    Recognised: an ``OSError`` whose errno is in :data:`DISK_FULL_ERRNOS`, and an
    ``sqlite3.Error`` with code ``SQLITE_FULL`` (what SQLAlchemy and Optuna's
    ``StorageInternalError`` wrap).
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return current
        if isinstance(current, sqlite3.Error) and (
            getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or _SQLITE_FULL_TEXT in str(current)
        ):
            return current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


def as_disk_full(exc: BaseException, where: str | os.PathLike | None) -> DiskFullError | None:
    """``exc`` as a :class:`DiskFullError` when its chain holds a full disk, else None.

    The OSError's own file name wins over ``where``; a :class:`DiskFullError` is returned as is.
    """
    if isinstance(exc, DiskFullError):
        return exc
    cause = disk_full_cause(exc)
    if cause is None:
        return None
    if isinstance(cause, OSError):
        place = cause.filename if cause.filename is not None else where
        return DiskFullError(place if place is not None else "the outputs", _reason(cause))
    return DiskFullError(where if where is not None else "the study", _reason(cause))


def _reason(cause: BaseException) -> str:
    """The system's words for a full disk found by :func:`disk_full_cause`."""
    if isinstance(cause, OSError):
        return cause.strerror or os.strerror(cause.errno)
    return _SQLITE_FULL_TEXT


@contextlib.contextmanager
def disk_full_as_error(where: str | os.PathLike) -> Iterator[None]:
    """Turn an exception whose chain holds a full disk into a :class:`DiskFullError` naming
    ``where`` (used around an Optuna study, whose errors do not name its file)."""
    try:
        yield
    except Exception as exc:
        error = as_disk_full(exc, where)
        if error is None or error is exc:
            raise
        raise error from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it replaces ``path``.

    For writers that insist on a path (``torch.onnx.export``, ``onnx.save``, Keras'
    ``model.save``, ``savefig``). The temporary name ends with ``path``'s suffix. On success
    the file is fsync'd, renamed onto ``path`` and the directory fsync'd; on any exception the
    temporary file is removed and ``path`` is left untouched. The parent directory is created.

    Raises:
        DiskFullError: the disk filled up while writing (the temporary file is gone).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, DiskFullError) or not isinstance(exc, Exception):
            raise
        cause = disk_full_cause(exc)
        if cause is None:
            raise
        raise DiskFullError(path, _reason(cause)) from None  # the destination, not the temp


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_files_atomic(files: Mapping[Path, bytes]) -> list[Path]:
    """Write several files as one: every temporary file is written first, then all are
    renamed into place. A failure while writing (a full disk) replaces none of them.

    Args:
        files: destination path -> bytes, in the order to write them.

    Returns:
        The destination paths, in that order.
    """
    with contextlib.ExitStack() as stack:
        for path, data in files.items():
            tmp = stack.enter_context(atomic_path(path))
            with open(tmp, "wb") as fh:
                fh.write(data)
    return [Path(p) for p in files]


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise
    finally:
        os.close(fd)


# --- paths checked before work ---------------------------------------------------------------


def check_output_dir(flag: str, path: str | os.PathLike) -> Path:
    """``path`` as a directory that exists or can be created and written; nothing is created.

    Args:
        flag: the parameter's name in messages (``--log_file``).
        path: the directory.

    Raises:
        UserError: ``path`` or one of its parents is a file, or the nearest existing parent is
            not writable.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if existing == path and not path.is_dir():
        raise UserError(
            f"{flag} must be a directory (created if missing); got {path}, which is a file"
        )
    if not existing.is_dir():
        raise UserError(
            f"{flag} must be a directory (created if missing); got {path}, but {existing} is a file"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"{flag} must be a writable directory; got {path}, and {existing} is not writable"
        )
    return path


def check_output_file(
    flag: str, path: str | os.PathLike, suffixes: tuple[str, ...] | None = None
) -> Path:
    """``path`` as a file that can be written (replaced if it exists); nothing is created.

    Args:
        flag: the parameter's name in messages (``--out``).
        path: the file.
        suffixes: allowed suffixes, lower case with the dot (None: any).

    Raises:
        UserError: ``path`` is a directory, has another suffix, or its directory is unusable
            (see :func:`check_output_dir`).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} must be a file path; got {path}, which is a directory")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        allowed = " or ".join(suffixes)
        raise UserError(f"{flag} must end in {allowed}; got {str(path)!r}")
    check_output_dir(f"the directory of {flag}", path.parent)
    return path
