"""The DSE core stays framework-free: importing it pulls in no torch, tensorflow or onnxruntime."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

FRAMEWORKS = ("torch", "tensorflow", "keras", "onnxruntime")
DSE_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for path in (ROOT / "weightshare" / "dse").rglob("*.py")
)


def _frameworks_imported_by(module: str) -> list[str]:
    """The FRAMEWORKS that ``import module`` pulls in, in a fresh interpreter."""
    code = (
        f"import sys\nimport {module}\n"
        f"print(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [m for m in proc.stdout.strip().split(",") if m]


def test_every_dse_module_is_found():
    assert "weightshare.dse.driver" in DSE_MODULES and "weightshare.dse.__init__" in DSE_MODULES


@pytest.mark.parametrize("module", [*DSE_MODULES, "tests.dse.fake_backend"])
def test_a_dse_module_imports_no_framework(module):
    assert _frameworks_imported_by(module.removesuffix(".__init__")) == []


def test_the_command_line_parser_imports_no_framework():
    code = (
        "import sys\nfrom weightshare.cli import build_parser\nbuild_parser()\n"
        "print(','.join(m for m in ('torch', 'tensorflow', 'onnxruntime') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""  # `python main.py --help` answers at once


# --- layering: modules import downward only (docs/layout.md) -------------------------------

LAYERS = {  # top-level name under weightshare/ -> layer (higher imports lower, never upward)
    "cli": 4,
    "modes": 4,
    "dse": 3,
    "pruning": 3,
    "updating": 3,
    "codecs": 2,
    "backends": 2,
    "networks": 1,
    "types": 0,
    "errors": 0,
    "validation": 0,
    "outputs": 0,
    "console": 0,
}


def _part(module: str) -> str:
    """``weightshare.dse.driver`` -> ``dse``; the package itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path) -> list[tuple[int, str]]:
    """(line, module) of every ``weightshare`` import in ``path``, function-level ones too."""
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "weightshare":  # from weightshare import dse
                found += [(node.lineno, f"weightshare.{a.name}") for a in node.names]
    return [(line, m) for line, m in found if m.split(".")[0] == "weightshare"]


def upward_imports(root) -> list[str]:
    """``file:line: a (layer) imports b (layer)`` for every import from a higher layer."""
    out = []
    for path in sorted((root / "weightshare").rglob("*.py")):
        relative = path.relative_to(root)
        part = _part(".".join(relative.with_suffix("").parts))
        if part in ("", "__init__"):
            continue  # weightshare/__init__.py: the version only
        assert part in LAYERS, f"{relative}: place '{part}' in LAYERS and docs/layout.md"
        for line, module in _imports(path):
            target = _part(module)
            if target in LAYERS and LAYERS[target] > LAYERS[part]:
                out.append(
                    f"{relative}:{line}: {part} (layer {LAYERS[part]}) imports {module} "
                    f"(layer {LAYERS[target]})"
                )
    return sorted(set(out))


def test_no_module_imports_from_a_layer_above_it():
    assert upward_imports(ROOT) == []


def test_the_layering_check_sees_an_upward_import(tmp_path):
    package = tmp_path / "weightshare"
    (package / "networks").mkdir(parents=True)
    (package / "networks" / "bad.py").write_text(
        "from weightshare import errors, modes\n\n\n"
        "def f():\n    from weightshare.backends.registry import BACKENDS\n"
    )
    (package / "types.py").write_text("from weightshare import errors\n")
    assert upward_imports(tmp_path) == [
        "weightshare/networks/bad.py:1: networks (layer 1) imports weightshare.modes (layer 4)",
        "weightshare/networks/bad.py:5: networks (layer 1) imports weightshare.backends.registry "
        "(layer 2)",
    ]


def test_the_backend_registry_and_format_sniffing_import_no_framework(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07")
    code = (
        "import sys\nfrom weightshare.backends.registry import model_format, plugins\n"
        f"assert model_format({str(model)!r}) == 'onnx'\nplugins()\n"
        "print(','.join(m for m in ('torch', 'tensorflow', 'onnxruntime', 'keras') "
        "if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
