"""A study shared through a real PostgreSQL server (started by scripts/postgres.sh, which
scripts/test.sh runs): a second machine joining the same study re-evaluates nothing."""

import json
import os
import re
import uuid

import pytest

from tests.conftest import run_main

URL = os.environ.get("WEIGHTSHARE_TEST_POSTGRES")
pytestmark = pytest.mark.skipif(
    not URL, reason="needs the server of scripts/postgres.sh (scripts/test.sh starts it)"
)


def test_the_server_url_has_the_readmes_form():
    # postgresql://USER@HOST:PORT/DB, no driver spelled: SQLAlchemy picks psycopg 3 for it
    assert re.fullmatch(r"postgresql://\w+@[\d.]+:\d+/\w+", URL), URL


def test_two_machines_share_one_study_through_postgresql(tmp_path):
    name = f"test-{uuid.uuid4().hex[:12]}"
    args = [
        "--mode",
        "exploration",
        "--workers",
        "0",
        "--storage",
        URL,
        "--study-name",
        name,
        "--dataset_scale",
        "0.02",
        "--k-grid",
        "4,16",
        "--n-trials",
        "4",
        "--population-size",
        "2",
    ]
    first = run_main(*args, "--log_file", str(tmp_path / "machine-a"))
    assert first.returncode in (0, 3), first.stderr[-2000:]
    second = run_main(*args, "--log_file", str(tmp_path / "machine-b"))
    assert second.returncode == first.returncode, second.stderr[-2000:]
    a = json.loads((tmp_path / "machine-a" / "results.json").read_text())
    b = json.loads((tmp_path / "machine-b" / "results.json").read_text())
    assert a["evaluations"] > 0 and b["evaluations"] == a["evaluations"]
    assert b["settings"]["storage"] == URL
    assert not (tmp_path / "machine-b" / "study.db").exists()
    assert (a["best"] or {}).get("k_per_layer") == (b["best"] or {}).get("k_per_layer")
