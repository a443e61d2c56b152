"""Reading an input file a user named, with one-line errors (the modes' public edge)."""

from __future__ import annotations

from pathlib import Path

from weightshare.errors import UserError

MAX_FILE_BYTES = 1 << 32


def read_input(path: Path, what: str) -> bytes:
    """The bytes of ``path``, at most ``MAX_FILE_BYTES`` of them.

    Args:
        path: the file.
        what: what the file is, for the messages ("model file", "residual file").

    Raises:
        UserError: the file is missing, a directory, too large or unreadable.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(f"{path} has {size} bytes; {what}s are at most {MAX_FILE_BYTES}")
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc})") from None
