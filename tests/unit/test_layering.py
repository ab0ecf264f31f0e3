"""Dependencies point one way: models ← firmware_bridge ← hardware ← robot_agent; cloud_sync → models only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "firmware_bridge", "hardware", "robot_agent", "cloud_sync")
ALLOWED = {
    "models": set(),
    "firmware_bridge": {"models"},
    "hardware": {"models", "firmware_bridge"},
    "robot_agent": {"models", "firmware_bridge", "hardware"},
    "cloud_sync": {"models"},
}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_it_may(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no modules"
    for path in files:
        wrong = imported_packages(path) - ALLOWED[package] - {package}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_checker_sees_imports() -> None:
    # Guard against a checker that passes because it finds nothing.
    assert imported_packages(ROOT / "robot_agent" / "__main__.py") >= {"models", "robot_agent"}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_sync_messages_do_not_depend_on_tickets() -> None:
    # The batch, the ack and the changes share COSE and CBOR with the tickets (models.cose, models.cbor),
    # not the ticket format itself: a change to tickets must not reach the sync wire.
    sync = sorted((ROOT / "models").glob("sync_*.py"))
    assert sync, "no sync modules in models"
    for path in sync:
        tickets = {name for name in imported_modules(path) if name.startswith("models.ticket")}
        assert not tickets, f"{path.relative_to(ROOT)} imports {sorted(tickets)}"
