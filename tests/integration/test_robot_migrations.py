"""The robot database's migrations: a new database gets exactly the models' schema; one from before
migrations (issue 4's tables, with their rows) is upgraded in place and keeps working; a database from a
newer agent, or a migration that fails half-way, is refused with the database left as it was."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, insert, inspect, select, text

from robot_agent.errors import RobotAgentError
from robot_agent.store.database import open_store
from robot_agent.store.migrate import alembic_config, current_revision, head_revision
from robot_agent.store.tables import ROBOT_METADATA
from robot_agent.tickets import CheckMethod, TicketDesk
from tests.integration.test_ticket_desk import NOW, SIGNER, cloud_says, signing_key_row, ticket, write_config

TABLES = ROBOT_METADATA.tables


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, ROBOT_METADATA))


def _schema(path: Path) -> tuple[list[Any], str | None]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return _differences(connection), current_revision(connection)
    finally:
        engine.dispose()


def _dump(path: Path) -> list[str]:
    """Every statement that rebuilds the database: its schema and its rows."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return list(connection.connection.dbapi_connection.iterdump())  # type: ignore[union-attr]
    finally:
        engine.dispose()


def _issue_4_database(path: Path) -> Engine:
    """A database as the agent made it before it had migrations: create_all of issue 4's tables (which is
    what revision 0001 creates), no alembic_version."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(text("DROP TABLE alembic_version"))
        connection.commit()
    return engine


def test_a_new_database_has_exactly_the_models_schema(tmp_path: Path) -> None:
    open_store(tmp_path / "robot.db").dispose()
    assert _schema(tmp_path / "robot.db") == ([], head_revision())
    before = _dump(tmp_path / "robot.db")
    open_store(tmp_path / "robot.db").dispose()  # at head: opening again changes nothing
    assert _dump(tmp_path / "robot.db") == before


def test_every_migration_undoes_and_redoes(tmp_path: Path) -> None:
    path = tmp_path / "robot.db"
    open_store(path).dispose()
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            command.downgrade(alembic_config(connection), "base")
            connection.commit()
            assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    open_store(path).dispose()
    assert _schema(path) == ([], head_revision())


def test_an_issue_4_database_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "robot.db"
    old = _issue_4_database(path)
    checked = uuid.uuid4()
    with old.begin() as conn:
        conn.execute(
            insert(TABLES["outbox"]).values(
                id=uuid.uuid4(), type="ticket.checked", wall_ms=1, mono_ms=1, boot=uuid.uuid4(), data=b"\xa0"
            )
        )
        conn.execute(
            text(
                "INSERT INTO ticket_checks (seq, ticket_id, verdict, train_number, at)"
                " VALUES (1, :ticket, 'valid', 742, '2026-11-20 10:00:00.000000')"
            ),
            {"ticket": checked.hex},
        )
    cloud_says(old, "all", signing_key_row(SIGNER, NOW.replace(month=1)))
    old.dispose()
    assert "used_tickets" not in _dump(path)[0]

    store = open_store(path)
    try:
        assert _schema(path) == ([], head_revision())
        with store.connect() as conn:
            assert conn.execute(select(TABLES["outbox"].c.seq)).scalars().all() == [1]
            old_check = conn.execute(select(TABLES["ticket_checks"])).one()
        assert (old_check.ticket_id, old_check.verdict, old_check.method) == (checked, "valid", "camera")
        # The synced keys came through: the desk verifies with them and writes the new columns and table.
        ticket_id, token = ticket()
        outcome = TicketDesk(store, write_config(tmp_path)).check(token, CheckMethod.TOKEN, NOW)
        assert outcome.ok, outcome.reason
        assert outcome.seq == 2  # AUTOINCREMENT carried on from the old outbox
        with store.connect() as conn:
            assert conn.execute(select(TABLES["used_tickets"].c.ticket_id)).scalars().all() == [ticket_id]
    finally:
        store.dispose()


def test_a_database_from_a_newer_agent_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "robot.db"
    open_store(path).dispose()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    before = _dump(path)
    with pytest.raises(RobotAgentError) as refused:
        open_store(path)
    assert str(refused.value) == (
        f"the robot database {path} is at schema revision 0099, which this robot-agent does not know (it "
        f"knows up to {head_revision()}): it was written by a newer robot-agent; run that one, or move the "
        "database aside to start afresh"
    )
    assert _dump(path) == before


def test_the_cli_names_a_database_it_cannot_use(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.storage.database.write_bytes(b"not a database, just bytes" * 100)
    _ticket_id, token = ticket()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "robot_agent",
            "--config",
            str(tmp_path / "robot.toml"),
            "verify-ticket",
            token,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert (
        f"cannot open the robot's database {config.storage.database}: file is not a database" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_a_migration_that_fails_half_way_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    # A database from before migrations whose ticket_checks somebody gave a method column by hand: it is taken
    # for revision 0001, and 0002 creates used_tickets, then fails to add the column that is there.
    path = tmp_path / "robot.db"
    engine = _issue_4_database(path)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ticket_checks ADD COLUMN method VARCHAR(20)"))
    engine.dispose()
    before = _dump(path)
    with pytest.raises(RobotAgentError, match=f"cannot open the robot's database {path}: duplicate column"):
        open_store(path)
    after = _dump(path)
    assert after == before
    assert not any("used_tickets" in line or "alembic_version" in line for line in after)


def _open(path: Path) -> None:
    open_store(path).dispose()


def test_processes_opening_one_new_database_at_once_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "robot.db"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open, args=(path,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert _schema(path) == ([], head_revision())
