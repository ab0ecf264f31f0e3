"""Dependencies point one way: models ← firmware_bridge ← hardware ← robot_agent; models ← broker_link ←
robot_agent and cloud_sync; cloud_sync imports models and broker_link only (decision 34). models does no I/O
but at the process edge both programs share (decision 31).

Each package imports only the next one down (and models): the agent reaches the MCU only through hardware/,
never through firmware_bridge itself; both programs reach the broker through broker_link.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "firmware_bridge", "hardware", "broker_link", "robot_agent", "cloud_sync")
ALLOWED = {
    "models": set(),
    "firmware_bridge": {"models"},
    "hardware": {"models", "firmware_bridge"},
    "broker_link": {"models"},
    "robot_agent": {"models", "hardware", "broker_link"},
    "cloud_sync": {"models", "broker_link"},
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


def test_the_robots_store_holds_no_face_key_and_imports_nothing_of_faces() -> None:
    # Down-sync's face rows are sealed by a sink the agent injects (robot_agent/faces/arrivals.py): the store
    # layer applies copies of the cloud's data and never holds the key that opens a passenger's face.
    files = sorted((ROOT / "robot_agent" / "store").rglob("*.py"))
    assert files
    for path in files:
        wrong = {m for m in imported_modules(path) if m.startswith("robot_agent.faces")}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"
    assert "robot_agent.store.replica" in imported_modules(ROOT / "robot_agent" / "faces" / "arrivals.py")


def test_the_checker_sees_imports() -> None:
    # Guard against a checker that passes because it finds nothing.
    assert imported_packages(ROOT / "robot_agent" / "cli" / "__init__.py") >= {"models", "robot_agent"}
    assert "firmware_bridge.mcu" in imported_modules(ROOT / "firmware_bridge" / "simulator.py")


def test_sync_messages_do_not_depend_on_tickets() -> None:
    # The batch, the ack and the changes share COSE and CBOR with the tickets (models.cose, models.cbor),
    # not the ticket format itself: a change to tickets must not reach the sync wire.
    sync = sorted((ROOT / "models").glob("sync_*.py"))
    assert sync, "no sync modules in models"
    for path in sync:
        tickets = {name for name in imported_modules(path) if name.startswith("models.ticket")}
        assert not tickets, f"{path.relative_to(ROOT)} imports {sorted(tickets)}"


# `models` does no I/O, but for the process edge both programs share and `cloud_sync` can reach only here:
# writing and reading key files, installing the log handlers, the console's standard output (decision 31),
# reading the model directory and checking each model file against its manifest (decision 35: the face
# pipeline in models/faces/ takes models as bytes).
# (The MQTT client both programs share is broker_link's, which may do I/O: decision 34.)
# Everything else in `models` is pure, and no pure module imports these.
MODELS_IO = {"keyfiles.py", "logformat.py", "console.py", "model_files.py"}
IO_MODULES = {
    "os",
    "sys",
    "select",
    "selectors",
    "shutil",
    "tempfile",
    "subprocess",
    "signal",
    "threading",
    "asyncio",
    "sqlite3",
    "logging.handlers",
    "urllib.request",
    "http.client",
    "aiohttp",
    "paho",
}
IO_CALLS = {
    "open",
    "print",
    "input",
    "read_bytes",
    "read_text",
    "write_bytes",
    "write_text",
    "mkdir",
    "unlink",
    "touch",
    "addHandler",
    "basicConfig",
    "FileHandler",
    "StreamHandler",
    "create_connection",
    "create_engine",
    "create_async_engine",
}


def io_in(path: Path) -> set[str]:
    """What `path` does that is I/O: the I/O modules it imports and the I/O calls it makes."""
    tree = ast.parse(path.read_text(), str(path))
    found = {
        name for name in imported_modules(path) if name in IO_MODULES or name.split(".")[0] in IO_MODULES
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in IO_CALLS:
                found.add(f"{name}()")
    return found


def test_models_does_io_only_at_the_programs_edge() -> None:
    for path in sorted((ROOT / "models").rglob("*.py")):
        if path.name in MODELS_IO:
            continue
        assert not io_in(path), f"{path.relative_to(ROOT)} does I/O: {sorted(io_in(path))}"
        edge = {f"models.{name.removesuffix('.py')}" for name in MODELS_IO} & imported_modules(path)
        assert not edge, f"{path.relative_to(ROOT)} imports {sorted(edge)}, which do I/O"


@pytest.mark.parametrize("name", sorted(MODELS_IO))
def test_the_checker_sees_io(name: str) -> None:
    # Each exception is still needed, and the checker sees it: a module that became pure leaves MODELS_IO.
    assert io_in(ROOT / "models" / name)


# cloud_sync's rooms point one way too (decision 34): the database at the bottom, the desks that decide
# sales and tickets on it, sync (the broker, ingest, down-sync) on those, the web on all three, and the
# command line on top. `cloud_sync.errors` is shared by every room.
ROOMS = ("db", "desks", "sync", "web", "cli")


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "cloud_sync" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ROOMS else None


@pytest.mark.parametrize("room", ROOMS)
def test_cloud_sync_rooms_import_only_the_rooms_below(room: str) -> None:
    files = sorted((ROOT / "cloud_sync" / room).rglob("*.py"))
    assert files, f"cloud_sync/{room} has no modules"
    below = set(ROOMS[: ROOMS.index(room) + 1])
    for path in files:
        above = {name for name in imported_modules(path) if (room_of(name) or room) not in below}
        assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}, from a room above {room}"


def test_cloud_sync_holds_only_rooms_and_shared_modules() -> None:
    # A new module goes in the room its job belongs to; only these stay at the top.
    top = {path.name for path in (ROOT / "cloud_sync").glob("*.py")}
    assert top == {"__init__.py", "__main__.py", "errors.py"}
    assert {path.name for path in (ROOT / "cloud_sync").iterdir() if path.is_dir()} - {"__pycache__"} == set(
        ROOMS
    )


def test_the_checker_sees_rooms() -> None:
    assert room_of("cloud_sync.web.app") == "web"
    assert "cloud_sync.db.database" in imported_modules(ROOT / "cloud_sync" / "web" / "app.py")
