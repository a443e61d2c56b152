"""serve an exploration's study in optuna-dashboard on 127.0.0.1 (Ctrl-C stops it)

See docs/exploration.md. ``--log_file DIR``: the run directory's study (``DIR/study.db``, or the
``--storage`` its results.json records); or ``--storage URL [--study-name NAME]``. Every phase
of the exploration is a study there (``NAME/baseline``, ``NAME/search``, ...); each trial shows
the per-layer k as params, size and accuracy as its two values, and the split, accuracies,
sizes and damage figures as user attributes."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from weightshare.errors import UserError
from weightshare.validation import check_int

HOST = "127.0.0.1"  # loopback only: the dashboard can edit the study (notes, tells)
DEFAULT_PORT = 8080


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``dashboard`` flags (``--storage`` and ``--study-name`` are the exploration's)."""
    g = parser.add_argument_group("dashboard")
    g.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"port of --mode dashboard on {HOST} (default {DEFAULT_PORT}; 0: a free one)",
    )


@dataclass(frozen=True)
class DashboardConfig:
    """Settings of ``--mode dashboard``.

    Attributes:
        storage: the Optuna storage URL of the study.
        study_name: the exploration's study name (prefix of its per-phase studies).
        port: TCP port on 127.0.0.1, in [0, 65535] (0: the system picks a free one).
    """

    storage: str
    study_name: str = "weightshare"
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        check_int("--port", self.port, 0, 65535)
        if not self.study_name or "/" in self.study_name:
            raise UserError(
                f"--study-name must be a non-empty name without '/'; got {self.study_name!r}"
            )


def study_of(log_file: Path | None, storage: str | None, study_name: str) -> tuple[str, str]:
    """(storage URL, study name) that ``--log_file`` / ``--storage`` designate.

    A run directory designates its ``study.db``, else the storage and study name its
    ``results.json`` records (an exploration run with ``--storage``).

    Raises:
        UserError: neither is given, or the directory holds no study.
    """
    if storage is not None:
        return storage, study_name
    if log_file is None:
        raise UserError(
            "--mode dashboard needs --log_file DIR (an exploration's run directory) or "
            "--storage URL; got neither"
        )
    db = Path(log_file) / "study.db"
    if db.is_file():
        return f"sqlite:///{db.resolve()}", study_name
    try:
        settings = json.loads((Path(log_file) / "results.json").read_text())["settings"]
        return settings["storage"], settings.get("study_name", study_name)
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(
            f"--log_file {log_file} holds no study (neither study.db nor a results.json naming "
            "its --storage): give an exploration's run directory, or --storage URL"
        ) from None


def phases(storage, study_name: str) -> list[str]:
    """Names of the per-phase studies of ``study_name`` in ``storage`` (an Optuna storage)."""
    prefix = study_name + "/"
    return sorted(
        s.study_name for s in storage.get_all_studies() if s.study_name.startswith(prefix)
    )


def run(config: DashboardConfig) -> int:
    """Serve the study until interrupted; prints the URL first. Returns the exit code."""
    try:
        import optuna_dashboard
    except ImportError:
        raise UserError(
            "optuna-dashboard is not installed here (the Docker image leaves it out): run "
            "--mode dashboard with the venv of scripts/setup.sh, or pip install "
            "optuna-dashboard==0.21.0"
        ) from None
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from weightshare.dse.study_lock import sqlite_path
    from weightshare.dse.trials import open_storage

    db = sqlite_path(config.storage)
    if db is not None and not db.is_file():  # opening it would create an empty study file
        raise UserError(f"--storage {config.storage}: no such file {db}")
    storage = open_storage(config.storage)
    names = phases(storage, config.study_name)
    if not names:
        raise UserError(
            f"--storage {config.storage} holds no study named {config.study_name!r} "
            "(give the --study-name of the exploration)"
        )

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args) -> None:  # one line per request would flood the terminal
            pass

    app = optuna_dashboard.wsgi(storage)
    try:
        server = make_server(HOST, config.port, app, Server, QuietHandler)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {HOST}:{config.port} ({exc.strerror}): pick another --port"
        ) from None
    url = f"http://{HOST}:{server.server_port}/dashboard"
    print(f"optuna-dashboard: {url}", flush=True)
    print(
        f"study {config.study_name!r} in {config.storage}: {len(names)} phases "
        f"({', '.join(n.split('/', 1)[1] for n in names)}); Ctrl-C stops the server",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("dashboard stopped", flush=True)
    finally:
        server.server_close()
    return 0


def main(args: argparse.Namespace) -> int:
    """``--mode dashboard`` from parsed flags; returns the exit code."""
    storage, name = study_of(args.log_file, args.storage, args.study_name)
    return run(DashboardConfig(storage=storage, study_name=name, port=args.port))
