"""The pinned stack: requirements.lock pins every package of the venv exactly, agrees with
requirements.txt, is what this venv holds, and the venv is consistent (``pip check``)."""

import re
import subprocess
import sys
import sysconfig
from importlib import metadata

from tests.conftest import ROOT

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==([A-Za-z0-9.+!-]+)$")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path) -> dict[str, str]:
    """name -> version of a requirements file; every requirement must be an exact pin."""
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{path}: {line!r} is not pinned with =="
        pins[_name(match.group(1))] = match.group(3)
    return pins


def test_the_lock_pins_every_requirement_at_its_version():
    lock, wanted = _pins("requirements.lock"), _pins("requirements.txt")
    assert {n: lock.get(n) for n in wanted} == wanted
    # psycopg 3 with its binary, and the SQLAlchemy that maps postgresql:// to it
    assert lock["psycopg"] == lock["psycopg-binary"] and "psycopg2-binary" not in lock
    assert "sqlalchemy" in wanted


def test_the_venv_holds_exactly_the_locked_versions():
    # Only the venv's site-packages: once Ray is imported, sys.path also holds its vendored
    # ray/thirdparty_files (psutil, colorama), which are not installed packages.
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {_name(d.metadata["Name"]): d.version for d in metadata.distributions(path=site)}
    installed.pop("weightshare", None)  # the project itself, when installed in development mode
    installed.pop("pip")  # the installer comes with the venv, not from the lock
    assert installed == _pins("requirements.lock")


def test_pip_check_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout == "No broken requirements found.\n", proc.stdout
