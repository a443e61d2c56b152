"""The backend names the tests iterate over, read from the backend registry: one place, so a
test never spells the list out and a new backend is picked up by every test that loops."""

from weightshare.backends.registry import BACKEND_NAMES

REFERENCE = "pytorch"
"""The backend the others are compared with."""
OTHER_BACKENDS: tuple[str, ...] = tuple(name for name in BACKEND_NAMES if name != REFERENCE)

__all__ = ["BACKEND_NAMES", "OTHER_BACKENDS", "REFERENCE"]
