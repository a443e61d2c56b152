"""The container recipe: there is no Docker engine here, so lint it with hadolint and check the
runner script's syntax and usage message."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"


def test_dockerfile_passes_hadolint():
    proc = subprocess.run(
        [str(HADOLINT), "docker/Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_run_docker_script_is_valid_bash_and_explains_its_usage():
    assert subprocess.run(["bash", "-n", "run_docker.sh"], cwd=ROOT).returncode == 0
    proc = subprocess.run(["bash", "run_docker.sh"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "usage: " in proc.stderr
