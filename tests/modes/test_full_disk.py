"""A full disk during ``--mode exploration``: one line, no partial output, the study resumes.

The log directory sits on a 2 MiB tmpfs filled so that the disk runs out in the middle of the
search (the SQLite study cannot commit) or while the outputs are written; freeing the space and
rerunning the same command must give the result of a run that never met a full disk.
"""

import json
import os

import pytest

from tests.conftest import fill_disk, one_line_error, run_main

EXPLORE = [
    "--mode", "exploration", "--workers", "0", "--threads", "1", "--dataset_scale", "0.05",
    "--k-grid", "4,16,64", "--n-trials", "8", "--population-size", "4",
]  # fmt: skip
QUIET = {"TQDM_DISABLE": "1"}  # progress bars off: stderr holds only what the run reports
SAME = ("baseline", "best", "pareto", "closest", "evaluations", "layers", "accuracy_target")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """results.json of the same exploration on a disk with room."""
    out = tmp_path_factory.mktemp("reference")
    proc = run_main(*EXPLORE, "--log_file", str(out), env=QUIET)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize(
    "free_kib, fails_on",
    [(160, "study.db"), (250, "outputs")],
    ids=["mid-search-study-commit", "writing-the-outputs"],
)
def test_a_full_disk_is_one_line_and_the_study_resumes(small_tmpfs, reference, free_kib, fails_on):
    run_dir = small_tmpfs / "run"
    filler = fill_disk(small_tmpfs, free_kib * 1024)
    full = run_main(*EXPLORE, "--log_file", str(run_dir), env=QUIET)
    line = one_line_error(full)
    if fails_on == "study.db":
        assert line == (
            f"error: the disk is full: cannot write {run_dir / 'study.db'} (database or disk is "
            "full); free some space and rerun the same command (an exploration resumes its study "
            "where it stopped)"
        )
    else:
        assert line.startswith(f"error: the disk is full: cannot write {run_dir}/")
        assert "(No space left on device)" in line
    # no output, whole or partial, no temporary file: only the study (and its driver lock)
    assert [name for name in os.listdir(run_dir) if not name.endswith(".lock")] == ["study.db"]

    filler.unlink()
    again = run_main(*EXPLORE, "--log_file", str(run_dir), env=QUIET)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads((run_dir / "results.json").read_text())
    assert {k: resumed[k] for k in SAME} == {k: reference[k] for k in SAME}
    assert resumed["best"] is not None
