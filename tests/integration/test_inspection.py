"""The engineers' read-only view of the robot's database, on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from robot_agent.clock import Clock
from robot_agent.store import outbox
from robot_agent.store.database import open_store
from robot_agent.store.inspection import Inspection, InspectionError, is_secret


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "robot.db"
    engine = open_store(path)
    with engine.begin() as conn:
        outbox.append(conn, "purchase", {"item": "tea"}, Clock())
    engine.dispose()
    return path


def test_sqlite_refuses_every_write_on_its_connection(database: Path) -> None:
    with Inspection(database) as inspection:
        found = inspection.rows("outbox", 5)
        assert [dict(zip(found.columns, row, strict=True))["type"] for row in found.rows] == ["purchase"]
        for statement in ("DELETE FROM outbox", "CREATE TABLE x (y)", "PRAGMA user_version = 7"):
            with pytest.raises(sqlite3.OperationalError, match="attempt to write a readonly database"):
                inspection.db.execute(statement)
    with Inspection(database) as inspection:
        assert {size.name: size.rows for size in inspection.tables()}["outbox"] == 1


def test_an_unknown_table_is_named_with_the_ones_there_are(database: Path) -> None:
    with (
        Inspection(database) as inspection,
        pytest.raises(InspectionError, match=r"no table 'outbx' in .*: .*outbox"),
    ):
        inspection.rows("outbx", 1)


@pytest.mark.parametrize(
    ("column", "secret"),
    [
        ("password", True),
        ("key", True),  # auth_cards: a keyed hash of the card UID
        ("code", True),  # tickets: what a passenger shows at the gate
        ("card_uid", True),
        ("face_embedding", True),
        ("api_token", True),
        ("public_key", False),  # signing_keys: the trust list is public
        ("user_id", False),
        ("sync_scope", False),
        ("kid", False),
        ("data", False),
    ],
)
def test_secret_columns_are_known_by_name(column: str, secret: bool) -> None:
    assert is_secret(column) is secret


def test_it_reads_beside_a_running_writer(database: Path) -> None:
    # The agent keeps its engine open (WAL mode): what it committed is read, before any checkpoint.
    engine = open_store(database)
    try:
        with engine.begin() as conn:
            outbox.append(conn, "purchase", {"item": "cake"}, Clock())
        with Inspection(database) as inspection:
            assert {size.name: size.rows for size in inspection.tables()}["outbox"] == 2
        with engine.begin() as conn:  # and the writer goes on writing
            outbox.append(conn, "purchase", {"item": "jam"}, Clock())
    finally:
        engine.dispose()
