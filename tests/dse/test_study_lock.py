"""The study lock with real processes: a live holder refuses a second driver by PID, a SIGKILLed
one blocks nothing, and server storages are not locked."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from weightshare.dse import study_lock
from weightshare.errors import UserError

HOLD = (
    "import sys, time\n"
    "from weightshare.dse import study_lock\n"
    "with study_lock.hold(sys.argv[1]):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)


def _holder(url: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_a_live_holder_refuses_a_second_driver_naming_its_pid(tmp_path):
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    holder = _holder(url)
    try:
        with pytest.raises(UserError) as info, study_lock.hold(url):
            pass
        assert str(info.value) == (
            f"another exploration (PID {holder.pid}) is running on the study {db}: one driver "
            f"per SQLite study; wait for it to end (or stop it: kill {holder.pid}), or use "
            "another --log_file/--storage"
        )
    finally:
        holder.kill()
        holder.wait()


def test_a_sigkilled_holders_lock_blocks_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    holder = _holder(url)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = tmp_path / "study.db.lock"
    assert lock.read_text() == f"{holder.pid}\n"  # the file stays; the kernel dropped the lock
    with study_lock.hold(url) as path:
        assert path == lock and lock.read_text() == f"{os.getpid()}\n"
    with study_lock.hold(url):  # released at the end of the block, re-taken in one process
        pass


def test_the_lock_is_held_for_the_whole_block_only(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    code = f"from weightshare.dse import study_lock\nwith study_lock.hold({url!r}): pass\n"

    def other_process_locks() -> bool:
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
        return proc.returncode == 0

    with study_lock.hold(url):
        time.sleep(0.1)
        assert not other_process_locks()
    assert other_process_locks()


@pytest.mark.parametrize(
    "url, path",
    [
        ("sqlite:////abs/study.db", "/abs/study.db"),
        ("sqlite:///rel/study.db?timeout=5", "rel/study.db"),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql://postgres@127.0.0.1:5432/db", None),
    ],
)
def test_only_sqlite_files_are_locked(url, path):
    assert study_lock.sqlite_path(url) == (None if path is None else Path(path))
    if path is None:
        with study_lock.hold(url) as lock:
            assert lock is None
