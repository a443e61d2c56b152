"""The backend names the tests iterate over, read from the package: one place to switch when
the backend registry moves (a test never spells the list out)."""

from weightshare.backends.factory import BACKENDS

BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
"""Every backend, the reference (``pytorch``) first."""

REFERENCE = "pytorch"
OTHER_BACKENDS: tuple[str, ...] = tuple(name for name in BACKEND_NAMES if name != REFERENCE)
