"""The two programs, run as a user runs them: help, version, check-config, keys, schema."""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from cloud_sync.cli import build_parser as cloud_parser
from robot_agent.cli import build_parser as robot_parser

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).resolve().parents[2] / "robot.toml"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    program, *rest = args
    return subprocess.run([str(BIN / program), *rest], capture_output=True, text=True, cwd=cwd, timeout=60)


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand a parser knows, as argument tuples."""
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from command_paths(sub, (*prefix, name))


ALL_COMMANDS = [("robot-agent", *p) for p in command_paths(robot_parser())] + [
    ("cloud-sync", *p) for p in command_paths(cloud_parser())
]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {' '.join(command)}")
    # A description or a help line per command, not just a usage line.
    assert len(result.stdout.strip().splitlines()) >= 4


def test_commands_are_found() -> None:
    assert ("robot-agent", "check-config") in ALL_COMMANDS
    assert ("robot-agent", "keys", "init") in ALL_COMMANDS
    assert ("cloud-sync", "schema") in ALL_COMMANDS


@pytest.mark.parametrize("program", ["robot-agent", "cloud-sync"])
def test_version(program: str) -> None:
    result = run(program, "--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"{program} {version('railbot')}")


@pytest.mark.parametrize("program", ["robot-agent", "cloud-sync"])
def test_no_command_prints_usage_and_fails(program: str) -> None:
    result = run(program)
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: {program}")


@pytest.fixture
def robot_dir(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE, tmp_path / "robot.toml")
    return tmp_path


def test_check_config_then_keys_init_then_check_config(robot_dir: Path) -> None:
    before = run("robot-agent", "check-config", "robot.toml", cwd=robot_dir)
    assert before.returncode == 1
    assert before.stderr.startswith(
        f"robot.toml: robot.key_file: file not found: {robot_dir / 'var' / 'robot.key'}"
    )

    created = run(
        "robot-agent", "--config", "robot.toml", "--log-format", "json", "keys", "init", cwd=robot_dir
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    created_line, face_key_line, next_step = (
        json.loads(line) for line in created.stderr.strip().splitlines()
    )
    assert created_line["level"] == "INFO"
    assert "created the robot's key pair" in created_line["message"]
    assert face_key_line["message"].startswith(f"created the face key file={robot_dir / 'var' / 'faces.key'}")
    assert (robot_dir / "var" / "faces.key").stat().st_mode & 0o777 == 0o600
    # The next step, logged so that stdout stays the key: register the robot under robot.toml's id.
    assert "cloud-sync robot add 6f1c1a9e-3d2b-4f0e-9a51-7a0b5f3c2d10 " in next_step["message"]
    assert (robot_dir / "var" / "robot.key").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in created.stdout + created.stderr

    # Not provisioned yet: the configuration is good, and the summary says what `run` still needs.
    after = run("robot-agent", "check-config", "robot.toml", cwd=robot_dir)
    assert after.returncode == 0, after.stderr
    assert after.stdout.startswith("robot.toml: OK")
    assert "train 742" in after.stdout
    assert (
        f"  broker login {robot_dir / 'var' / 'mqtt-credentials'} (not yet: "
        "`cloud-sync robot provision ROBOT_ID --out DIR` writes it; `run` needs it)"
    ) in after.stdout.splitlines()
    assert (
        f"  local API {robot_dir / 'var' / 'robot-agent.sock'}, password logins only (no card key yet)"
        in after.stdout.splitlines()
    )
    assert "  behaviour speaks ru, gate opens 3000 ms" in after.stdout.splitlines()

    shown = run("robot-agent", "--config", "robot.toml", "keys", "show", cwd=robot_dir)
    assert (shown.returncode, shown.stdout) == (0, created.stdout)

    # Again (as after `make setup`): the key is kept, never replaced, and the next step printed again.
    again = run("robot-agent", "--config", "robot.toml", "keys", "init", cwd=robot_dir)
    assert (again.returncode, again.stdout) == (0, created.stdout)
    assert f"{robot_dir / 'var' / 'robot.key'} already exists: the robot keeps its key" in again.stderr
    assert f"{robot_dir / 'var' / 'faces.key'} already exists: the robot keeps its face key" in again.stderr
    assert "cloud-sync robot add" in again.stderr
    assert (
        run("robot-agent", "--config", "robot.toml", "keys", "show", cwd=robot_dir).stdout == created.stdout
    )


def test_logging_follows_the_config_unless_a_flag_overrides_it(robot_dir: Path) -> None:
    path = robot_dir / "robot.toml"
    path.write_text(path.read_text().replace('format = "text"', 'format = "json"'))
    created = run("robot-agent", "--config", "robot.toml", "keys", "init", cwd=robot_dir)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stderr.splitlines()[0])["logger"] == "robot_agent"
    path.write_text(
        path.read_text().replace("# file = ", "file = ").replace('level = "INFO"', 'level = "DEBUG"')
    )
    (robot_dir / "var" / "robot.key").unlink()
    flagged = run(
        "robot-agent", "--config", "robot.toml", "--log-format", "text", "keys", "init", cwd=robot_dir
    )
    assert flagged.returncode == 0, flagged.stderr
    assert flagged.stderr == ""  # the log goes to the file, the next step with it
    created_line, face_key_line, next_step = (robot_dir / "var" / "robot-agent.log").read_text().splitlines()
    assert " INFO robot_agent: created the robot's key pair" in created_line
    assert " INFO robot_agent: " in face_key_line
    assert " INFO robot_agent: next, in the cloud, register the robot" in next_step


def test_check_config_names_every_bad_key_and_the_file(robot_dir: Path) -> None:
    run("robot-agent", "--config", "robot.toml", "keys", "init", cwd=robot_dir)
    path = robot_dir / "robot.toml"
    text = (
        path.read_text()
        .replace("fps = 15.0", "fsp = 15.0")
        .replace("train_number = 742", 'train_number = "742"')
    )
    path.write_text(text)
    result = run("robot-agent", "check-config", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}: assignment.train_number: Input should be a valid integer, got '742'")
    assert lines[1].startswith(f"{path}: camera.fsp: unknown key (did you mean 'fps'?)")


def test_check_config_on_a_missing_file(tmp_path: Path) -> None:
    result = run("robot-agent", "check-config", str(tmp_path / "robot.toml"))
    assert (result.returncode, result.stderr.strip()) == (
        1,
        f"{tmp_path / 'robot.toml'}: configuration file not found",
    )


# What the agent's commands load only when they run (decision 43): the store (SQLAlchemy, Alembic) and the
# agent itself; the face pipeline and its runtimes.
HEAVY = ("sqlalchemy", "alembic", "robot_agent.store.database", "robot_agent.runtime")
FACE_RUNTIMES = ("models.faces.pipeline", "cv2", "onnxruntime", "numpy")


def modules_loaded_by(argv: list[str], cwd: Path) -> set[str]:
    """Which of HEAVY and FACE_RUNTIMES `robot-agent ARGV` has imported once it is done."""
    probe = (
        "import json, sys\n"
        "from robot_agent.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY + FACE_RUNTIMES!r} if m in sys.modules]), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )
    return set(json.loads(result.stderr.splitlines()[-1]))


def test_help_and_check_config_load_only_what_they_need(robot_dir: Path) -> None:
    assert modules_loaded_by(["--help"], robot_dir) == set()
    assert modules_loaded_by(["keys", "--bogus"], robot_dir) == set()
    assert run("robot-agent", "keys", "init", cwd=robot_dir).returncode == 0
    # robot.toml's [vision] names the detector and embedder, so the config loads their runtimes (for now).
    assert modules_loaded_by(["check-config"], robot_dir).isdisjoint(HEAVY)


def test_schema_sql_creates_the_tables_in_sqlite(tmp_path: Path) -> None:
    result = run("cloud-sync", "schema", "--dialect", "sqlite")
    assert result.returncode == 0, result.stderr
    db = sqlite3.connect(tmp_path / "schema.db")
    db.executescript(result.stdout)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert {"users", "tickets", "stores", "store_items", "purchases", "tasks"} <= tables
    assert len(tables) == 15


def test_schema_sql_for_postgres_names_the_seed_types() -> None:
    result = run("cloud-sync", "schema", "--database", "store")
    assert result.returncode == 0
    assert "CREATE TYPE store_type_enum AS ENUM ('SHOP', 'RESTAURANT')" in result.stdout
    assert "created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL" in result.stdout
    assert "CREATE TABLE users" not in result.stdout


TOOL_MODULES = ["firmware_bridge.simulator", "firmware_bridge.noise_proxy", "firmware_bridge.vectors"]


@pytest.mark.parametrize("module", TOOL_MODULES)
def test_every_tool_has_help(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module}")
    assert len(result.stdout.strip().splitlines()) >= 4


def test_run_refuses_a_missing_key_unprovisioned_files_or_open_credentials(robot_dir: Path) -> None:
    missing = run("robot-agent", "--config", "robot.toml", "run", cwd=robot_dir)
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[0] == (
        f"robot.toml: robot.key_file: file not found: {robot_dir / 'var' / 'robot.key'} "
        "(create it with `robot-agent keys init`)"
    )

    run("robot-agent", "--config", "robot.toml", "keys", "init", cwd=robot_dir)
    unprovisioned = run("robot-agent", "--config", "robot.toml", "run", cwd=robot_dir)
    hint = "(`cloud-sync robot provision ROBOT_ID --out DIR` writes it)"
    var = robot_dir / "var"
    assert (unprovisioned.returncode, unprovisioned.stderr.splitlines()) == (
        1,
        [
            f"robot.toml: cloud.credentials_file: file not found: {var / 'mqtt-credentials'} {hint}",
            f"robot.toml: tickets.trust_file: file not found: {var / 'trust.json'} {hint}",
        ],
    )
    assert missing.stderr.splitlines()[1:] == unprovisioned.stderr.splitlines()

    (robot_dir / "var" / "trust.json").write_text('{"keys": []}\n')
    credentials = robot_dir / "var" / "mqtt-credentials"
    credentials.write_text("robot:secret\n")
    credentials.chmod(0o644)
    exposed = run("robot-agent", "--config", "robot.toml", "--log-format", "json", "run", cwd=robot_dir)
    assert exposed.returncode == 1
    assert exposed.stderr.strip() == (
        f"robot-agent: {credentials} is readable by others (mode 0644); run `chmod 600` on it"
    )
    assert not (robot_dir / "var" / "robot.db").exists()
