"""The bench scripts' public edge: bad input ends as one line, as ``python main.py`` does.

    if __name__ == "__main__":
        raise SystemExit(one_line_errors(main))

A :class:`~weightshare.errors.UserError` raised anywhere in ``main`` is printed as
``error: <message>`` on stderr and the script exits with 2, without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from weightshare.errors import UserError


def one_line_errors(main: Callable[[], int | None]) -> int:
    """Run ``main``; its return value (None counts as 0) or 2 after a UserError."""
    try:
        return main() or 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
