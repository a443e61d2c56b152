"""``--mode exploration`` as a user runs it: the seed's command, bad input, resume after SIGKILL,
one driver per SQLite study."""

import csv
import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, one_line_error, png_size, run_main
from tests.dse.test_report import PNG_SIZES

SMALL = ["--k-grid", "4,16,64", "--n-trials", "8", "--population-size", "4"]


@pytest.mark.slow
def test_the_seeds_command_writes_every_output_and_its_best_point_passes_the_holdout(tmp_path):
    out = tmp_path / "lenet5"
    proc = run_main(
        "--network_dataset",
        "lenet5_fashionmnist",
        "--log_file",
        str(out),
        "--dataset_scale",
        "0.1",
        "--with_local_optimization",
        "1",
        "--mode",
        "exploration",
        "--optimization",
        "two_step_optimization",
        *SMALL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in (
        "results.json",
        "pareto.csv",
        "trials.csv",
        "pareto.png",
        "k_per_layer.png",
        "sensitivity.png",
        "study.db",
    ):
        assert (out / name).is_file(), name
    for name, size in PNG_SIZES.items():  # LeNet-5's 5 layers: k_per_layer is 6 inches wide
        assert png_size((out / name).read_bytes()) == size, name
    doc = json.loads((out / "results.json").read_text())
    for key in (
        "network",
        "backend",
        "optimization",
        "baseline",
        "accuracy_target",
        "best",
        "pareto",
        "evaluations",
        "wall_seconds",
        "settings",
    ):
        assert key in doc
    best = doc["best"]
    for key in (
        "k_per_layer",
        "accuracy_search",
        "accuracy_holdout",
        "passes_holdout",
        "size_bytes",
        "compression_ratio_fixed",
        "compression_ratio_coded",
    ):
        assert key in best
    assert best["passes_holdout"] is True
    assert best["compression_ratio_fixed"] > 2
    assert doc["accuracy_target"] == pytest.approx(0.99 * doc["baseline"]["accuracy_search"])
    assert "best (*)" in proc.stdout
    with (out / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    fp32 = [r for r in rows if r["phase"] == "baseline"]
    assert fp32 and all(float(r["kl"]) == 0.0 and float(r["flip"]) == 0.0 for r in fp32)
    one_layer = [r for r in rows if r["phase"] == "sensitivity"]
    assert one_layer and all(float(r["kl"]) > 0.0 for r in one_layer)
    assert all(float(r["cross_entropy"]) > 0.0 for r in rows)
    # the same command again resumes: nothing is evaluated twice
    again = run_main(
        "--network_dataset",
        "lenet5_fashionmnist",
        "--log_file",
        str(out),
        "--dataset_scale",
        "0.1",
        "--mode",
        "exploration",
        "--workers",
        "0",
        *SMALL,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    redo = json.loads((out / "results.json").read_text())
    assert redo["evaluations"] == doc["evaluations"]
    assert redo["best"]["k_per_layer"] == best["k_per_layer"]


def test_different_settings_on_the_same_study_are_refused(tmp_path):
    def args(grid):
        return [
            "--mode",
            "exploration",
            "--workers",
            "0",
            "--log_file",
            str(tmp_path),
            "--dataset_scale",
            "0.02",
            "--k-grid",
            grid,
            "--n-trials",
            "0",
            "--with_local_optimization",
            "0",
        ]

    first = run_main(*args("4"))
    assert first.returncode in (0, 3), first.stderr[-2000:]
    line = one_line_error(run_main(*args("8")))
    assert "was made with k_grid=[4] but this run has k_grid=[8]" in line

    # a study of a writer before manifest coding 2 stored larger file sizes: refused, kept
    import optuna

    study = optuna.load_study(
        study_name="weightshare/baseline", storage=f"sqlite:///{tmp_path / 'study.db'}"
    )
    settings = dict(study.user_attrs["settings"])
    assert settings.pop("manifest_coding") == 2
    study.set_user_attr("settings", settings)
    line = one_line_error(run_main(*args("4")))
    assert "was made with manifest_coding not set but this run has manifest_coding=2" in line
    assert study.user_attrs["settings"] == settings  # the old study is left as it was


@pytest.mark.parametrize(
    "args, message",
    [
        (["--optimization", "bayesian_optimization"], "--optimization must be one of"),
        (["--storage", "nosuchdb://x"], "cannot open --storage"),
        (["--k-grid", "4,z"], "--k-grid must be comma-separated ints"),
        (["--accuracy-ratio", "1.5"], "--accuracy-ratio must be a float in (0, 1]"),
        (["--optimization", "paper", "--with_local_optimization", "0"], "paper needs step 1"),
        (["--prune-grid", "0,1"], "--prune-grid must be comma-separated sparsities in [0, 1)"),
        (["--confirm-margin", "-1"], "error: --confirm-margin must be a float >= 0; got -1.0"),
        (
            ["--confirm-margin", "1", "--dataset_scale", "1"],
            "error: --confirm-margin applies to the whole-search-split confirmation, which runs "
            "only with --dataset_scale < 1; got --dataset_scale 1 and --confirm-margin 1",
        ),
        (
            ["--prune-grid", "0.5", "--granularity", "channel"],
            "--prune-grid shares each pruned layer's survivors in one codebook: it needs "
            "--granularity layer; got 'channel'",
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message):
    line = one_line_error(
        run_main(
            "--mode", "exploration", "--workers", "0", "--log_file", str(tmp_path / "run"), *args
        )
    )
    assert message in line
    assert not (tmp_path / "run").exists()  # refused before the log directory is made


def test_a_postgresql_url_of_the_readmes_form_reaches_its_server(tmp_path):
    """``postgresql://`` maps to psycopg 3, which is installed: the error is about the server
    (nothing listens on port 1), not a missing driver, and no log directory is left."""
    url = "postgresql://postgres@127.0.0.1:1/weightshare"
    out = tmp_path / "run"
    args = ["--mode", "exploration", "--workers", "0", "--log_file", str(out), "--storage", url]
    line = one_line_error(run_main(*args))
    assert line == (
        f"error: cannot open --storage {url!r} (connection failed: connection to server at "
        '"127.0.0.1", port 1 failed: Connection refused)'
    )
    assert not out.exists()


def test_an_unwritable_log_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = one_line_error(run_main("--mode", "exploration", "--log_file", str(blocker / "run")))
    assert line == (
        f"error: --log_file must be a directory (created if missing); got {blocker / 'run'}, "
        f"but {blocker} is a file"
    )


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--accuracy-ratio", "0", "--accuracy-ratio must be a float in (0, 1]; got 0.0"),
        (
            "--k-grid",
            "",
            "--k-grid must be comma-separated ints in [2, 65536], e.g. 2,4,8,16; got ''",
        ),
    ],
)
def test_an_invalid_value_is_refused_not_replaced_by_the_default(tmp_path, flag, value, message):
    # with the default in its place, this command runs and exits 0
    args = [
        "--mode", "exploration", "--workers", "0", "--log_file", str(tmp_path),
        "--dataset_scale", "0.02", "--n-trials", "0", "--with_local_optimization", "0",
        "--k-grid", "4", flag, value,
    ]  # fmt: skip
    line = one_line_error(run_main(*args))
    assert line == f"error: {message}"


def test_an_impossible_target_says_so_and_exits_non_zero(tmp_path):
    proc = run_main(
        "--mode",
        "exploration",
        "--workers",
        "0",
        "--log_file",
        str(tmp_path),
        "--dataset_scale",
        "0.02",
        "--k-grid",
        "2",
        "--accuracy-ratio",
        "1.0",
        "--n-trials",
        "4",
        "--population-size",
        "2",
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "no evaluated point meets the accuracy target" in proc.stdout
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "infeasible" and doc["best"] is None and doc["closest"]


def _completed(db) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT t.trial_id, a.value_json FROM trials t JOIN trial_user_attributes a "
            "ON a.trial_id = t.trial_id WHERE t.state = 'COMPLETE' AND a.key = 'key'"
        ).fetchall()


def _explore_args(tmp_path, n_trials: int) -> list[str]:
    return [
        sys.executable,
        "main.py",
        "--mode",
        "exploration",
        "--workers",
        "0",
        "--log_file",
        str(tmp_path),
        "--dataset_scale",
        "0.05",
        "--k-grid",
        "2,4,8,16,32,64",
        "--n-trials",
        str(n_trials),
        "--population-size",
        "4",
    ]


def _start_and_wait(args, tmp_path, n_completed: int) -> subprocess.Popen:
    """Start an exploration and return once its study holds ``n_completed`` finished trials."""
    log = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    db, deadline = tmp_path / "study.db", time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            if db.exists() and len(_completed(db)) >= n_completed:
                break
        except sqlite3.OperationalError:
            continue
    assert proc.poll() is None, "the run ended before it could be stopped"
    return proc


@pytest.mark.slow
def test_a_sigkilled_driver_loses_no_finished_trial(tmp_path):
    args = _explore_args(tmp_path, 30)
    proc = _start_and_wait(args, tmp_path, 12)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _completed(tmp_path / "study.db")
    assert len(before) >= 12
    # the killed driver's lock file is left, with its PID: the kernel dropped the lock itself
    assert (tmp_path / "study.db.lock").read_text() == f"{proc.pid}\n"
    rerun = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = _completed(tmp_path / "study.db")
    assert set(before) <= set(after)  # every trial finished before the kill is still there
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["best"] is not None


@pytest.mark.slow
def test_a_second_driver_on_a_running_study_is_refused_and_the_first_ends_as_a_lone_run(tmp_path):
    shared, lone = tmp_path / "shared", tmp_path / "lone"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        _explore_args(shared, 10), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
    )
    lock, deadline = shared / "study.db.lock", time.monotonic() + 300
    while not (lock.exists() and lock.read_text() == f"{first.pid}\n"):
        assert first.poll() is None and time.monotonic() < deadline, "the first never locked"
        time.sleep(0.05)
    # Paused while it holds the lock, the first cannot finish before the second starts, however
    # fast the machine; it resumes right after.
    first.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        second = subprocess.run(
            _explore_args(shared, 10), cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        seconds = time.monotonic() - start
    finally:
        first.send_signal(signal.SIGCONT)
    db = (shared / "study.db").resolve()
    assert one_line_error(second) == (
        f"error: another exploration (PID {first.pid}) is running on the study {db}: one "
        f"driver per SQLite study; wait for it to end (or stop it: kill {first.pid}), or use "
        "another --log_file/--storage"
    )
    assert seconds < 30  # refused before loading anything (about 1 s here)
    assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-2000:]
    alone = subprocess.run(_explore_args(lone, 10), cwd=ROOT, capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr[-2000:]
    docs = [json.loads((d / "results.json").read_text()) for d in (shared, lone)]
    for doc in docs:  # the only fields that differ between two lone runs
        del doc["wall_seconds"], doc["settings"]["storage"]
    assert docs[0] == docs[1]
    assert docs[0]["best"] is not None


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_was_found(tmp_path):
    proc = _start_and_wait(_explore_args(tmp_path, 200), tmp_path, 40)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    stderr = (tmp_path / "stderr.log").read_text()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "interrupted" and doc["evaluations"] >= 30  # some were reused
