"""The one exception type that reaches the user as a single line.

Anything raised as :class:`UserError` is printed by the CLI as ``error: <message>`` on stderr
with exit code 2 and no traceback. Raise it at the public edge (bad flags, missing files,
corrupt inputs); everything past validation may trust its inputs.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line (exit code 2)."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message, at most ``limit`` characters.

    Framework errors (ONNX Runtime, TensorFlow, SQLAlchemy, Ray) span many lines; a
    :class:`UserError` quotes only this line. An empty message gives the exception's type name.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__
