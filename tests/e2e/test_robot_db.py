"""`robot-agent db`, run as an engineer runs it: the robot's tables and rows, read-only, never a secret."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from robot_agent.clock import Clock
from robot_agent.config import load_config
from robot_agent.store import outbox
from robot_agent.store.database import open_store

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).resolve().parents[2] / "robot.toml"
CARD_HASH = "hmac-sha256:5f1d9c0e7a2b4c6d8e0f1a2b3c4d5e6f"
PASSWORD_HASH = "$2b$12$abcdefghijklmnopqrstuvCDEFGHIJKLMNOPQRSTUVWXYZ012345"
TICKET_CODE = "RB1:secret-ticket-code"


def agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "robot-agent"), "--config", "robot.toml", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture(scope="module")
def robot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A robot folder with its key and a database holding events, an engineer, a card and a ticket; shared by
    the tests of this module, which only read it (and check that they did)."""
    tmp_path = tmp_path_factory.mktemp("robot")
    shutil.copy(EXAMPLE, tmp_path / "robot.toml")
    assert agent("keys", "init", cwd=tmp_path).returncode == 0
    database = load_config(tmp_path / "robot.toml", provisioned_may_be_missing=True).storage.database
    engine = open_store(database)
    engineer = uuid.uuid4().hex
    with engine.begin() as conn:
        for n in range(3):
            outbox.append(conn, "engineer_action", {"action": "open", "n": n}, Clock())
        conn.execute(
            text("INSERT INTO engineers VALUES ('s', :id, 'ann', :password, 1)"),
            {"id": engineer, "password": PASSWORD_HASH},
        )
        conn.execute(
            text("INSERT INTO auth_cards VALUES ('s', :id, :engineer, :key)"),
            {"id": uuid.uuid4().hex, "engineer": engineer, "key": CARD_HASH},
        )
        conn.execute(
            text(
                "INSERT INTO tickets VALUES ('s', :id, :user, 742, 3, 41, '2026-12-02 08:00:00', 'MSK',"
                " 'SPB', '2026-12-02 09:00:00', :code, 0)"
            ),
            {"id": uuid.uuid4().hex, "user": uuid.uuid4().hex, "code": TICKET_CODE},
        )
    engine.dispose()
    return tmp_path


def stored(folder: Path) -> tuple[bytes, bytes]:
    """What the robot's database holds, byte for byte: the file and its write-ahead log (none: empty). Not the
    -shm file, an index of the log that SQLite rebuilds, which a reader of a WAL database may create."""
    wal = folder / "var" / "robot.db-wal"
    return (folder / "var" / "robot.db").read_bytes(), wal.read_bytes() if wal.exists() else b""


def test_tables_lists_every_table_with_its_row_count(robot_dir: Path) -> None:
    listed = agent("db", "tables", "--json", cwd=robot_dir)
    assert listed.returncode == 0, listed.stderr
    counts = {entry["table"]: entry["rows"] for entry in json.loads(listed.stdout)}
    assert counts["outbox"] == 3
    assert (counts["engineers"], counts["auth_cards"], counts["tickets"], counts["users"]) == (1, 1, 1, 0)

    shown = agent("db", "tables", cwd=robot_dir)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].split() == ["table", "rows"]
    assert "outbox" in shown.stdout
    assert shown.stdout.count("\n") == len(counts) + 2


@pytest.mark.parametrize(
    ("table", "form"),
    [
        ("engineers", "table"),
        ("engineers", "json"),
        ("engineers", "csv"),
        ("auth_cards", "json"),
        ("tickets", "csv"),
    ],
)
def test_rows_never_show_a_secret(robot_dir: Path, table: str, form: str) -> None:
    shown = agent("db", "rows", table, "--format", form, cwd=robot_dir)
    assert shown.returncode == 0, shown.stderr
    for secret in (CARD_HASH, PASSWORD_HASH, TICKET_CODE):
        assert secret not in shown.stdout + shown.stderr
    masked = {"engineers": "password", "auth_cards": "key", "tickets": "code"}[table]
    assert shown.stderr == f"robot-agent: {masked} masked (secret)\n"
    if form == "json":
        [row] = json.loads(shown.stdout)
    elif form == "csv":
        [row] = csv.DictReader(io.StringIO(shown.stdout))
    else:
        header, rule, line = shown.stdout.splitlines()
        starts = [i for i, c in enumerate(rule) if c == "-" and (i == 0 or rule[i - 1] == " ")]
        cut = list(zip(starts, [*starts[1:], None], strict=True))
        row = {header[a:b].strip(): line[a:b].strip() for a, b in cut}
    assert row[masked] == "***"
    assert row["sync_scope"] == "s"


def test_rows_take_a_limit_and_show_binary_data_by_its_size(robot_dir: Path) -> None:
    shown = agent("db", "rows", "outbox", "--limit", "2", "--format", "json", cwd=robot_dir)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [row["seq"] for row in rows] == [1, 2]
    assert all(row["type"] == "engineer_action" for row in rows)
    assert all(row["data"].startswith("<") and row["data"].endswith(" bytes>") for row in rows)
    assert shown.stderr == ""


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("db", "rows", "nope"), 1, "robot-agent: no table 'nope' in "),
        (("db", "tables", "--database", "missing.db"), 1, "robot-agent: no database at missing.db"),
        (("db", "tables", "--database", "robot.toml"), 1, "robot-agent: robot.toml: file is not a database"),
        (("db", "rows", "outbox", "--limit", "0"), 2, "usage: robot-agent db rows"),
    ],
)
def test_bad_input_is_one_clear_line(robot_dir: Path, args: tuple[str, ...], code: int, message: str) -> None:
    before = stored(robot_dir)
    result = agent(*args, cwd=robot_dir)
    assert result.returncode == code
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr
    assert stored(robot_dir) == before


def test_reading_never_changes_stored_data(robot_dir: Path) -> None:
    before = stored(robot_dir)
    assert len(before[0]) > 4096  # the database is there to be compared
    for args in [("db", "tables"), ("db", "rows", "outbox", "--format", "csv"), ("db", "rows", "engineers")]:
        assert agent(*args, cwd=robot_dir).returncode == 0
    assert stored(robot_dir) == before


def test_an_old_database_is_read_as_it_is_not_migrated(tmp_path: Path) -> None:
    # open_store would migrate it (and add alembic_version and every table); db must only look.
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, type TEXT)")
        conn.execute("INSERT INTO outbox (type) VALUES ('purchase')")
    conn.close()
    before = path.read_bytes()
    shutil.copy(EXAMPLE, tmp_path / "robot.toml")
    listed = agent("db", "tables", "--json", "--database", str(path), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [{"table": "outbox", "rows": 1}]
    assert path.read_bytes() == before
