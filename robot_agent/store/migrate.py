"""The robot database's schema, kept by Alembic (robot_agent/store/migrations): `migrate` brings a database
to the newest revision when the agent opens it, in one transaction.

A robot updates its agent unattended and opens the database it already has, so there is no separate migrate
step to forget. A database made before the robot had migrations (no `alembic_version`, but the outbox) is
stamped with the revision its tables match, then upgraded. One written by a newer agent is refused: an older
agent cannot know what the newer schema means.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect, text

from robot_agent.errors import RobotAgentError

log = logging.getLogger(__name__)

MIGRATIONS: Final = Path(__file__).parent / "migrations"
# The revision a database from before migrations is at, told by its tables: the newest marker table present.
_UNVERSIONED: Final = (("used_tickets", "0002"), ("outbox", "0001"))


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RobotAgentError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's revision; None for an empty database or one from before migrations."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, path: Path) -> None:
    """Bring the database at `path` (opened as `engine`) to the newest revision; raises RobotAgentError."""
    head = head_revision()
    with engine.connect() as connection:
        # IMMEDIATE: an agent and a verify-ticket opening one new database take turns; and SQLite's DDL is
        # transactional, so a migration that fails half-way leaves the database as it was.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        current = current_revision(connection)
        if current == head:
            connection.rollback()
            return
        config = alembic_config(connection)
        start = current
        if current is None:
            tables = set(inspect(connection).get_table_names())
            start = next((revision for table, revision in _UNVERSIONED if table in tables), None)
            if start is not None:
                log.info("robot database %s predates migrations; its tables are revision %s", path, start)
                command.stamp(config, start)
        log.info("migrating the robot database %s from %s to %s", path, start or "empty", head)
        try:
            command.upgrade(config, "head")
        except CommandError as err:  # only a revision this agent has no script for
            connection.rollback()
            raise RobotAgentError(
                f"the robot database {path} is at schema revision {current}, which this robot-agent does not "
                f"know (it knows up to {head}): it was written by a newer robot-agent; run that one, or move "
                f"the database aside to start afresh"
            ) from err
        connection.commit()
        log.info("robot database %s is at revision %s", path, head)
