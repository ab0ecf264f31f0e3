"""Migrating the cloud database with Alembic, and telling whether a database is up to date."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_sync.database import create_engine
from cloud_sync.errors import CloudSyncError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db")).get_current_head()
    if head is None:
        raise CloudSyncError("no migrations found")
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to `revision`; Alembic logs each step as it runs."""
    create_engine(url)  # validates the URL and creates a SQLite file's folder
    command.upgrade(alembic_config(url), revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        # Alembic announces its dialect at INFO on every configure; a check is not worth a log line.
        quiet = logging.getLogger("alembic.runtime.migration")
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            return MigrationContext.configure(connection).get_current_revision()
        finally:
            quiet.setLevel(level)

    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    except (SQLAlchemyError, OSError) as err:
        raise CloudSyncError(f"cannot open the database: {err}") from err


async def require_current(engine: AsyncEngine, url: str) -> None:
    """Refuse a database that is not migrated to the newest revision, saying what to run."""
    current, head = await current_revision(engine), head_revision()
    if current == head:
        return
    state = "not migrated" if current is None else f"at revision {current}, the code needs {head}"
    raise CloudSyncError(f"the database is {state}: run `cloud-sync migrate --db {url}` first")
