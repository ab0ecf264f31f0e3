"""Dependencies point one way: models ← firmware_bridge ← hardware ← robot_agent; cloud_sync → models only.

Each package imports only the next one down (and models): the agent reaches the MCU only through hardware/,
never through firmware_bridge itself.
"""

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
    "robot_agent": {"models", "hardware"},
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


# The MCU's end of the link (and the simulator built on it) is the board's side: the host's end and the
# hardware on top of it share only what both ends speak (framing, schema, arq, errors).
MCU_SIDE = {"firmware_bridge.mcu", "firmware_bridge.sim_board", "firmware_bridge.simulator"}
HOST_SIDE = (
    "firmware_bridge/host.py",
    "firmware_bridge/client.py",
    "firmware_bridge/transport.py",
    "hardware",
)


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("where", HOST_SIDE)
def test_the_host_side_does_not_import_the_mcu_side(where: str) -> None:
    root = ROOT / where
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    assert files, f"{where} has no modules"
    for path in files:
        wrong = imported_modules(path) & MCU_SIDE
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_checker_sees_imports() -> None:
    # Guard against a checker that passes because it finds nothing.
    assert imported_packages(ROOT / "robot_agent" / "__main__.py") >= {"models", "robot_agent"}
    assert "firmware_bridge.mcu" in imported_modules(ROOT / "firmware_bridge" / "simulator.py")
