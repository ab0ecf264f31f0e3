"""Bad input to the two programs, run as processes (issue 13, items 9, 10 and 13): a database that cannot be
reached, a port that cannot be bound, an unknown or older revision, a closed standard output. Each is one
line naming the problem and a non-zero exit, never a traceback; and the logs stay one JSON object a line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_sync.db.migrate import head_revision, read_revision
from tests.support.ports import accepts_connections, free_port, wait_until
from tests.support.postgres import ThrowawayDatabase
from tests.support.provisioned import write_provisioned_files

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).resolve().parents[2] / "robot.toml"


def run(*args: str, cwd: Path | None = None, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    program, *rest = args
    return subprocess.run(
        [str(BIN / program), *rest],
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str], program: str = "cloud-sync") -> str:
    """The single line a failed command printed, checked to be one line with no traceback."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{program}: ")
    return line


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database not migrated yet, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'cloud.db'}"
    database: ThrowawayDatabase = request.getfixturevalue("postgres_db")
    return database.dsn


def unreachable_databases(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL, what the error must say) for databases that cannot be used."""
    nope = f"nope_{uuid.uuid4().hex[:12]}"
    yield (
        f"postgresql://postgres:hunter2@127.0.0.1/{nope}",
        f'cannot connect to the database at postgresql://postgres:***@127.0.0.1/{nope}: database "{nope}" '
        "does not exist",
    )
    port = free_port()
    yield (
        f"postgresql://postgres@127.0.0.1:{port}/railbot",
        f"cannot connect to the database at postgresql://postgres@127.0.0.1:{port}/railbot: "
        "Connection refused",
    )
    garbage = tmp_path / "not-a-database.db"
    garbage.write_text("root:x:0:0:root:/root:/bin/bash\n" * 100)
    yield f"sqlite:///{garbage}", f"cannot open the database at sqlite:///{garbage}: file is not a database"


@pytest.mark.parametrize(
    "command",
    [("migrate",), ("token", "list"), ("changes", "status"), ("serve", "--port", "0")],
    ids=" ".join,
)
def test_a_database_that_cannot_be_used_is_one_line_naming_it(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    for url, message in unreachable_databases(tmp_path):
        result = run("cloud-sync", *command, "--db", url, cwd=tmp_path)
        assert one_line_error(result) == f"cloud-sync: {message}"
        assert "hunter2" not in result.stderr
        assert "serving" not in result.stderr


def test_migrate_refuses_an_unknown_revision_before_touching_the_database(tmp_path: Path) -> None:
    path = tmp_path / "cloud.db"
    # Every revision from 0001 to the newest, by name.
    choices = ", ".join(f"{n:04d}" for n in range(1, int(head_revision()) + 1))
    for revision in ("bogus", "-1"):
        result = run("cloud-sync", "migrate", "--db", f"sqlite:///{path}", "--revision", revision)
        assert one_line_error(result) == (
            f"cloud-sync: unknown revision {revision!r}: give one of {choices}, head or base"
        )
    assert not path.exists()


def test_migrate_refuses_a_downgrade_by_name_and_performs_it_with_the_flag(empty_db_url: str) -> None:
    head = head_revision()
    assert run("cloud-sync", "migrate", "--db", empty_db_url).returncode == 0

    refused = run("cloud-sync", "migrate", "--db", empty_db_url, "--revision", "0001")
    assert one_line_error(refused) == (
        f"cloud-sync: the database is at revision {head}, newer than 0001: cloud-sync migrate goes back only "
        "with --downgrade, which drops what the newer revisions added, data included"
    )
    assert read_revision(empty_db_url) == head

    downgraded = run("cloud-sync", "migrate", "--db", empty_db_url, "--revision", "0001", "--downgrade")
    assert downgraded.returncode == 0, downgraded.stderr
    assert downgraded.stderr.splitlines()[-1].endswith("INFO cloud_sync: database at revision=0001")
    assert read_revision(empty_db_url) == "0001"

    upgraded = run("cloud-sync", "migrate", "--db", empty_db_url, "--log-format", "json")
    assert upgraded.returncode == 0, upgraded.stderr
    last = json.loads(upgraded.stderr.splitlines()[-1])
    assert (last["message"], last["revision"]) == (f"database at revision={head}", head)
    assert read_revision(empty_db_url) == head


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert run("cloud-sync", "migrate", "--db", url).returncode == 0
    return url


def test_serve_logs_serving_once_bound_and_names_a_port_it_cannot_bind(
    migrated_sqlite: str, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [str(BIN / "cloud-sync"), "serve", "--db", migrated_sqlite, "--port", "0"],
            stderr=stderr,
            text=True,
        )
    processes.append(server)
    wait_until(lambda: "serving" in log.read_text() or server.poll() is not None, 60, "cloud-sync serve")
    # No signing key in this database: serve says it serves, then warns about that.
    [line, *_] = [line for line in log.read_text().splitlines() if "serving" in line]
    port = int(line.rsplit("port=", 1)[1])
    assert port > 0
    assert accepts_connections("127.0.0.1", port)  # at once: "serving" comes after the bind

    in_use = run("cloud-sync", "serve", "--db", migrated_sqlite, "--port", str(port))
    assert one_line_error(in_use) == f"cloud-sync: cannot listen on 127.0.0.1:{port}: Address already in use"

    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0


@pytest.mark.parametrize("port", ["80000", "-1", "http"])
def test_serve_refuses_a_port_out_of_range_as_a_usage_error(port: str, migrated_sqlite: str) -> None:
    result = run("cloud-sync", "serve", "--db", migrated_sqlite, "--port", port)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("cloud-sync serve: error: argument --port: ")
    assert port in result.stderr.splitlines()[-1]


@pytest.fixture
def robot_dir(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE, tmp_path / "robot.toml")
    return tmp_path


@pytest.mark.parametrize(
    "command",
    [("cloud-sync", "schema"), ("robot-agent", "check-config")],
    ids=" ".join,
)
def test_a_closed_stdout_ends_quietly_with_the_status_of_sigpipe(
    command: tuple[str, ...], robot_dir: Path
) -> None:
    assert run("robot-agent", "keys", "init", cwd=robot_dir).returncode == 0
    reading, writing = os.pipe()
    os.close(reading)  # as `| head -0`: the reader is gone before the first write
    try:
        result = run(*command, cwd=robot_dir, stdout=writing)
    finally:
        os.close(writing)
    assert (result.returncode, result.stderr) == (141, "")


def json_lines(stderr: str) -> list[dict[str, object]]:
    lines = stderr.splitlines()
    assert lines
    return [json.loads(line) for line in lines]


def test_log_options_are_taken_before_and_after_the_command(migrated_sqlite: str, robot_dir: Path) -> None:
    for args in (
        ("--log-format", "json", "migrate", "--db", migrated_sqlite),
        ("migrate", "--db", migrated_sqlite, "--log-format", "json"),
        ("--log-format", "json", "migrate", "--db", migrated_sqlite, "--log-level", "INFO"),
    ):
        result = run("cloud-sync", *args)
        assert result.returncode == 0, result.stderr
        assert json_lines(result.stderr)[-1]["logger"] == "cloud_sync"
    quiet = run("cloud-sync", "migrate", "--db", migrated_sqlite, "--log-level", "WARNING")
    assert (quiet.returncode, quiet.stderr) == (0, "")

    first = run("robot-agent", "--log-format", "json", "keys", "init", cwd=robot_dir)
    assert first.returncode == 0, first.stderr
    assert json_lines(first.stderr)[0]["robot"] == "6f1c1a9e-3d2b-4f0e-9a51-7a0b5f3c2d10"
    (robot_dir / "var" / "robot.key").unlink()
    after = run("robot-agent", "keys", "init", "--log-format", "json", cwd=robot_dir)
    assert after.returncode == 0, after.stderr
    assert json_lines(after.stderr)[0]["robot"] == "6f1c1a9e-3d2b-4f0e-9a51-7a0b5f3c2d10"


def test_agent_logs_stay_json_while_the_camera_is_missing(
    robot_dir: Path, processes: list[subprocess.Popen[str]]
) -> None:
    missing = robot_dir / "video9"
    config = robot_dir / "robot.toml"
    text = config.read_text().replace("device = 0", f'device = "{missing}"')
    config.write_text(text.replace("mqtt://127.0.0.1:1883", f"mqtt://127.0.0.1:{free_port()}"))
    assert run("robot-agent", "keys", "init", cwd=robot_dir).returncode == 0
    write_provisioned_files(robot_dir)
    log = robot_dir / "agent.log"
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}
    with log.open("w") as stderr:
        agent = subprocess.Popen(
            [str(BIN / "robot-agent"), "--log-format", "json", "run"],
            cwd=robot_dir,
            stderr=stderr,
            env=env,
            text=True,
        )
    processes.append(agent)
    # OpenCV printed its warning before the agent logs its own line about the same failed open.
    wait_until(
        lambda: "robot_agent.vision.camera" in log.read_text() or agent.poll() is not None, 60, "camera line"
    )
    agent.send_signal(signal.SIGINT)
    assert agent.wait(timeout=30) == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    [camera] = [e for e in entries if e["logger"] == "robot_agent.vision.camera"]
    assert camera["level"] == "WARNING"
    assert camera["source"] == f"device:{missing}"
    assert str(missing) in str(camera["message"])
