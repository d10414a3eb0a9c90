"""The pure core imports nothing that does I/O: a parse of every import, not a convention."""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "jitbot"
PURE = [
    "errors",
    "events",
    "domain",
    "review",
    "durations",
    "commands",
    "policy",
    "eligibility",
    "catalog",
    "catalog_nodes",
    "catalog_policy",
    "slack/views",
    "slack/approval",
    "slack/dms",
    "slack/alerts",
    "slack/forms",
    "slack/lists",
    "slack/ids",
    "providers/pim",
    "providers/settings",
    "providers/aws_settings",
    "providers/aws_sso_settings",
    "providers/azure_settings",
    "providers/gcp_settings",
    "providers/fake_settings",
]
ALLOWED_THIRD_PARTY = {"yaml"}  # parsing text is not I/O; catalog.load_catalog is the one that opens a file


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_core_when_imports_parsed_then_only_stdlib_and_pure_siblings(module: str) -> None:
    pure_modules = {"jitbot." + m.replace("/", ".") for m in PURE} | {"jitbot", "jitbot.slack"}
    io_stdlib = {"socket", "subprocess", "os", "http", "urllib", "threading", "asyncio", "time"}
    for name in imported_roots(PACKAGE / f"{module}.py"):
        root = name.split(".")[0]
        if root == "jitbot":
            assert name in pure_modules, f"{module} imports {name}, which is not pure"
        elif root == "__future__":
            continue
        else:
            assert root in sys.stdlib_module_names or root in ALLOWED_THIRD_PARTY, f"{module} imports {name}"
            assert root not in io_stdlib, f"{module} imports {name}, an I/O module"


def test_csv_writers_when_imports_parsed_then_only_csv_cells_imports_csv() -> None:
    """Every CSV jitbot writes goes through csv_cells.write_csv, which makes each cell inert (OWASP)."""
    writers = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if "csv" in imported_roots(path)}
    assert writers == {"csv_cells.py"}
