"""What may import what (docs/architecture.md): a parse of every import, not a convention.

The core is pure; the app layer (use cases) and the adapters (slack, store, providers, jobs) import the core; an
adapter may drive the app but never imports another adapter (jitbot.runtime, the wiring, hands each what it needs).
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "jitbot"
CORE = sorted(p.relative_to(PACKAGE).with_suffix("").as_posix() for p in (PACKAGE / "core").glob("*.py"))
PURE_ELSEWHERE = [  # pure modules that belong with their adapter: what Slack shows, what a catalog says of a cloud
    "slack/views",
    "slack/approval",
    "slack/dms",
    "slack/alerts",
    "slack/forms",
    "slack/lists",
    "slack/answers",
    "slack/ids",
    "slack/state",  # the protocols of what the Slack adapter keeps in the store
    "providers/pim",
    "providers/settings",
    "providers/aws_settings",
    "providers/aws_sso_settings",
    "providers/azure_settings",
    "providers/gcp_settings",
    "providers/fake_settings",
]
PURE = CORE + PURE_ELSEWHERE
ALLOWED_THIRD_PARTY = {"yaml"}  # parsing text is not I/O; catalog.load_catalog is the one that opens a file
IO_STDLIB = {"socket", "subprocess", "os", "http", "urllib", "threading", "asyncio", "time"}
ADAPTERS = ("slack", "store", "providers", "jobs")
IO_LIBRARIES = {"redis", "rq", "slack_sdk", "slack_bolt", "boto3", "botocore", "azure", "google", "googleapiclient"}


def imported(path: Path) -> set[str]:
    """Every module `path` imports; `from jitbot.x import y` names jitbot.x.y when y is a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            folder = PACKAGE.parent / node.module.replace(".", "/")
            names |= {f"{node.module}.{a.name}" for a in node.names if (folder / f"{a.name}.py").exists()}
    return names


def module_names(folder: str) -> list[str]:
    return sorted(p.relative_to(PACKAGE).with_suffix("").as_posix() for p in (PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("module", PURE)
def test_pure_core_when_imports_parsed_then_only_stdlib_and_pure_siblings(module: str) -> None:
    pure_modules = {"jitbot." + m.replace("/", ".") for m in PURE} | {"jitbot", "jitbot.core", "jitbot.slack"}
    pure_modules |= {"jitbot.providers"}  # a package whose __init__ imports nothing at run time (TYPE_CHECKING)
    for name in imported(PACKAGE / f"{module}.py"):
        root = name.split(".")[0]
        if root == "jitbot":
            assert name in pure_modules, f"{module} imports {name}, which is not pure"
        elif root != "__future__":
            assert root in sys.stdlib_module_names or root in ALLOWED_THIRD_PARTY, f"{module} imports {name}"
            assert root not in IO_STDLIB, f"{module} imports {name}, an I/O module"


def test_core_when_imports_parsed_then_no_slack_app_or_adapter_module() -> None:
    for module in CORE:
        outside = {n for n in imported(PACKAGE / f"{module}.py") if n.split(".")[:2] != ["jitbot", "core"]}
        reached = {n for n in outside if n.startswith(("jitbot.slack", "jitbot.app", "jitbot.store", "jitbot.jobs"))}
        assert not reached, f"{module} imports {sorted(reached)}"


def test_app_layer_when_imports_parsed_then_no_slack_redis_rq_cloud_sdk_or_adapter() -> None:
    """The use cases reach the world through their ports (app/ports, app/repository) and the provider protocol."""
    found = {}
    for module in module_names("app"):
        names = imported(PACKAGE / f"{module}.py")
        crossing = {n for n in names if n.split(".")[0] in IO_LIBRARIES}
        crossing |= {n for n in names if n.split(".")[:2][-1] in (*ADAPTERS, "runtime") and n.startswith("jitbot.")}
        crossing -= {"jitbot.providers.base"}  # the provider protocol is the app's port to the clouds
        if crossing:
            found[module] = crossing
    assert found == {}


def test_adapters_when_imports_parsed_then_none_imports_another() -> None:
    """An adapter reaches what another keeps through protocols it owns (slack/state), wired by jitbot.runtime."""
    found = {}
    for adapter in ADAPTERS:
        for module in module_names(adapter):
            names = imported(PACKAGE / f"{module}.py")
            others = {n for n in names if n.startswith("jitbot.") and n.split(".")[1] in set(ADAPTERS) - {adapter}}
            if others:
                found[module] = others
    assert found == {}


def test_product_when_imports_parsed_then_only_the_demo_reaches_the_stand_ins() -> None:
    """The stand-ins ship because `jitbot demo` runs on them; nothing else in the product imports them."""
    reaching = {
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "testing" not in p.relative_to(PACKAGE).parts and any(n.startswith("jitbot.testing") for n in imported(p))
    }
    assert reaching == {"ops/demo.py", "ops/demo_transcript.py"}


def test_csv_writers_when_imports_parsed_then_only_csv_cells_imports_csv() -> None:
    """Every CSV jitbot writes goes through csv_cells.write_csv, which makes each cell inert (OWASP)."""
    writers = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "csv" in imported(p)}
    assert writers == {"core/csv_cells.py"}
