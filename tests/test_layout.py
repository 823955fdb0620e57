"""The package keeps its shape: short modules and functions, protocol names only in the backends, lazy backends."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "csvpublish"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
WHOLE = "reads better whole"
"""A comment with these words, on the line above a function, allows it to be longer (say why)."""

PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"}
OWNERS = {
    "storage/registry.py",
    "storage/s3.py",
    "storage/gcs.py",
    "storage/azure.py",
    "storage/objectstore.py",
    "storage/filesystem.py",
}
"""The modules allowed to name a protocol: the registry and the backends."""


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_and_functions_stay_short(path: Path) -> None:
    """No module is over 400 lines and no function over 60, unless a comment says why it reads better whole."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{_name(path)} has {len(lines)} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            excused = first >= 2 and WHOLE in lines[first - 2]
            assert size <= MAX_FUNCTION_LINES or excused, f"{_name(path)}:{node.lineno} {node.name} has {size} lines"


@pytest.mark.parametrize("path", [p for p in MODULES if _name(p) not in OWNERS], ids=_name)
def test_no_protocol_name_outside_the_backends(path: Path) -> None:
    """Callers ask a backend's capabilities: no string literal names a protocol outside the registry and backends."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    named = [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in PROTOCOLS
    ]
    assert named == [], f"{_name(path)} names protocols: {named}"


def test_importing_the_package_imports_no_backend_package() -> None:
    """``import csvpublish`` and a memory:// Storage load neither s3fs, gcsfs nor adlfs, nor their backend modules."""
    code = (
        "import sys, csvpublish\n"
        "csvpublish.Storage('memory://layout-test')\n"
        "names = ('s3fs', 'gcsfs', 'adlfs', 'azure', 'csvpublish.storage.s3', 'csvpublish.storage.gcs',"
        " 'csvpublish.storage.azure')\n"
        "print(sorted(m for m in sys.modules if m.startswith(names)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
