"""The DSE core stays framework-free: importing it pulls in no torch, tensorflow or onnxruntime."""

import subprocess
import sys

from tests.conftest import ROOT

MODULES = [
    "clustering",
    "size",
    "space",
    "objective",
    "sensitivity",
    "combine",
    "evaluator",
    "executor",
    "trials",
    "driver",
    "report",
    "ray_runtime",
]


def test_dse_modules_import_no_framework():
    code = (
        "import sys\n"
        + "".join(f"import weightshare.dse.{m}\n" for m in MODULES)
        + "heavy = [m for m in ('torch', 'tensorflow', 'onnxruntime') if m in sys.modules]\n"
        + "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_the_command_line_parser_imports_no_framework():
    code = (
        "import sys\nfrom weightshare.cli import build_parser\nbuild_parser()\n"
        "print(','.join(m for m in ('torch', 'tensorflow', 'onnxruntime') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""  # `python main.py --help` answers at once
