"""The one exception type that reaches the user as a single line.

Anything raised as :class:`UserError` is printed by the CLI as ``error: <message>`` on stderr
with exit code 2 and no traceback. Raise it at the public edge (bad flags, missing files,
corrupt inputs); everything past validation may trust its inputs.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one line (exit code 2)."""
