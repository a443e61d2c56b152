"""Atomic output files, full-disk errors and output paths checked before work."""

import os
import sqlite3

import pytest
import sqlalchemy
from optuna.exceptions import StorageInternalError

from tests.conftest import fill_disk
from weightshare.errors import UserError
from weightshare.outputs import (
    DiskFullError,
    as_disk_full,
    atomic_path,
    check_output_dir,
    check_output_file,
    disk_full_as_error,
    write_bytes_atomic,
    write_files_atomic,
    write_text_atomic,
)


def test_a_failure_mid_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = write_text_atomic(tmp_path / "results.json", "old\n")
    with pytest.raises(RuntimeError, match="the writer broke"), atomic_path(path) as tmp:
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("the writer broke")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["results.json"]


def test_the_temporary_file_sits_beside_the_target_and_keeps_its_suffix(tmp_path):
    target = tmp_path / "new" / "model.keras"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".keras"
        assert tmp.name.startswith(".model.tmp-")
        tmp.write_bytes(b"keras zip")
        assert not target.exists()
    assert target.read_bytes() == b"keras zip"
    assert os.listdir(target.parent) == ["model.keras"]


def test_write_files_atomic_replaces_all_or_none(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.png"
    assert write_files_atomic({a: b"1", b: b"2"}) == [a, b]
    with pytest.raises(TypeError):
        write_files_atomic({a: b"new", b: "not bytes"})
    assert (a.read_bytes(), b.read_bytes()) == (b"1", b"2")
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.png"]


def test_a_full_disk_is_one_disk_full_error_and_leaves_the_old_files(small_tmpfs):
    old = write_bytes_atomic(small_tmpfs / "model.wsz", b"old model")
    other = write_bytes_atomic(small_tmpfs / "trials.csv", b"old rows")
    fill_disk(small_tmpfs, 16 * 1024)
    with pytest.raises(DiskFullError) as caught:
        write_bytes_atomic(old, b"x" * (64 * 1024))
    assert str(caught.value) == (
        f"the disk is full: cannot write {old} (No space left on device); free some space and "
        "rerun the same command (an exploration resumes its study where it stopped)"
    )
    with pytest.raises(DiskFullError, match="the disk is full: cannot write"):
        write_files_atomic({other: b"new rows", old: b"x" * (64 * 1024)})
    assert old.read_bytes() == b"old model" and other.read_bytes() == b"old rows"
    assert sorted(os.listdir(small_tmpfs)) == ["filler", "model.wsz", "trials.csv"]


def _sqlite_full() -> sqlalchemy.exc.OperationalError:
    """A real SQLITE_FULL through SQLAlchemy: a database capped at 2 pages, then filled."""
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as con:
        con.exec_driver_sql("PRAGMA max_page_count = 2")
        con.exec_driver_sql("CREATE TABLE t (x BLOB)")
        try:
            con.exec_driver_sql("INSERT INTO t VALUES (zeroblob(100000))")
        except sqlalchemy.exc.OperationalError as exc:
            return exc
    raise AssertionError("SQLite accepted more than its page limit")


def test_sqlite_full_under_sqlalchemy_and_optuna_names_the_study():
    wrapped = _sqlite_full()
    assert isinstance(wrapped.orig, sqlite3.OperationalError)
    try:  # what optuna's RDBStorage does with a failed commit
        raise StorageInternalError("An exception is raised during the commit.") from wrapped
    except StorageInternalError as exc:
        optuna_error = exc
    with pytest.raises(DiskFullError) as caught, disk_full_as_error("runs/x/study.db"):
        raise optuna_error
    assert str(caught.value).startswith(
        "the disk is full: cannot write runs/x/study.db (database or disk is full)"
    )


def test_other_errors_are_not_disk_full():
    assert as_disk_full(ValueError("bad"), "x") is None
    assert as_disk_full(PermissionError(13, "Permission denied", "x"), "y") is None
    with pytest.raises(KeyError), disk_full_as_error("x"):
        raise KeyError("k")
    full = OSError(28, "No space left on device", "/data/f")
    assert str(as_disk_full(full, "ignored")).startswith("the disk is full: cannot write /data/f (")


def test_output_dir_checks(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError) as caught:
        check_output_dir("--log_file", blocker)
    assert str(caught.value) == (
        f"--log_file must be a directory (created if missing); got {blocker}, which is a file"
    )
    with pytest.raises(UserError) as caught:
        check_output_dir("--log_file", blocker / "sub" / "run")
    assert str(caught.value) == (
        f"--log_file must be a directory (created if missing); got {blocker / 'sub' / 'run'}, "
        f"but {blocker} is a file"
    )
    assert check_output_dir("--log_file", tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # checked, not created


def test_output_file_checks(tmp_path):
    with pytest.raises(UserError) as caught:
        check_output_file("--out", tmp_path)
    assert str(caught.value) == f"--out must be a file path; got {tmp_path}, which is a directory"
    with pytest.raises(UserError, match=r"^--out must end in \.pt or \.onnx; got '.*m\.bin'$"):
        check_output_file("--out", tmp_path / "m.bin", (".pt", ".onnx"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"^the directory of --out must be a directory"):
        check_output_file("--out", tmp_path / "f" / "m.pt")
    assert check_output_file("--out", tmp_path / "new" / "M.PT", (".pt",)).name == "M.PT"
