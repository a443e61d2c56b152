"""Shared fixtures: the real Fashion-MNIST splits (loaded once) and the committed baselines."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from weightshare.networks.keras_runtime import preload_triton

# A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored across
# exec: the Ctrl-C tests' subprocesses (exploration, dashboard) would never see their SIGINT.
# Catching it here gives every child the default disposition (Python's KeyboardInterrupt).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
# Test modules import tensorflow directly (pytest.importorskip); triton must be loaded before it
# or the ONNX exporter's import of triton segfaults (see keras_runtime.preload_triton).
preload_triton()
os.environ.setdefault("MPLCONFIGDIR", "/tmp/weightshare-mpl")


@pytest.fixture(scope="session")
def search_split():
    from weightshare.networks.datasets import load_split

    return load_split("search")


@pytest.fixture(scope="session")
def holdout_split():
    from weightshare.networks.datasets import load_split

    return load_split("holdout")


@pytest.fixture(scope="session")
def small_search(search_split):
    from weightshare.networks.datasets import Split

    return Split("search@0.2", search_split.images[:1000], search_split.labels[:1000])


def run_main(
    *args: str, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python main.py ARGS`` in the repo root; returns the completed process (text mode)."""
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_mode(mode: str, out: Path, *flags: str) -> dict:
    """Run ``python main.py --mode MODE FLAGS --log_file OUT``, assert it exited 0, and return
    the mode's report ``OUT/MODE.json`` (``prune.json``, ``deep_compression.json``, ...)."""
    proc = run_main("--mode", mode, *flags, "--log_file", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / f"{mode}.json").read_text())


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """Assert ``proc`` failed the way bad input must (exit 2, one ``error:`` line on stderr, no
    traceback) and return that line."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's signature and IHDR chunk; fails on anything else."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16]
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB tmpfs mounted under ``tmp_path`` (a disk that can be filled); skipped, with the
    reason, where mounting is not permitted. Unmounted afterwards."""
    import shutil

    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small tmpfs to fill")
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"mounting a 2 MiB tmpfs is not permitted here: {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True, check=False)


def fill_disk(directory: Path, leave_bytes: int) -> Path:
    """Write ``directory/filler`` so that ``leave_bytes`` (or less) stay free on its disk."""
    stat = os.statvfs(directory)
    filler = directory / "filler"
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave_bytes))
    return filler


_FIGURES: list[str] = []


@pytest.fixture
def figures(request):
    """``figures(line)`` keeps a line of what a test measured (node ids, trial counts, ...);
    the lines are printed in the run's terminal summary, so CI logs show them without ``-s``."""

    def keep(line: str) -> None:
        _FIGURES.append(f"{request.node.nodeid}: {line.strip()}")

    return keep


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the lines the tests kept with :func:`figures`."""
    if _FIGURES:
        terminalreporter.section("figures the tests checked")
        for line in _FIGURES:
            terminalreporter.write_line(line)
