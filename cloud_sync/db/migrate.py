"""Migrating the cloud database with Alembic, and telling whether a database is up to date."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_sync.db.database import connect_action, create_engine, database_errors, shown_url
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


def _target(script: ScriptDirectory, revision: str) -> str | None:
    """The revision id `revision` names ("head", "base" or an id), None for base; refuses anything else,
    relative steps included, before the database is touched."""
    known = [r.revision for r in script.walk_revisions()]
    if revision == "base":
        return None
    if revision == "head":
        return head_revision()
    if revision not in known:
        choices = ", ".join(reversed(known))
        raise CloudSyncError(f"unknown revision {revision!r}: give one of {choices}, head or base")
    return revision


def upgrade(url: str, revision: str = "head", *, downgrade: bool = False) -> str | None:
    """Bring the database to `revision` and return the revision it is at afterwards, read back from it.

    Alembic logs each step as it runs. Going back to an older revision drops what the newer ones added,
    data included, so it is refused unless `downgrade` is true.
    """
    config = alembic_config(url)
    script = ScriptDirectory.from_config(config)
    target = _target(script, revision)
    current = read_revision(url)  # validates the URL, creates a SQLite file's folder, and connects
    _refuse_unknown(current, url)
    if target == current:
        return current
    older = current is not None and (
        target is None or target in {r.revision for r in script.iterate_revisions(current, "base")}
    )
    if older and not downgrade:
        raise CloudSyncError(
            f"the database is at revision {current}, newer than {target or 'base'}: cloud-sync migrate "
            "goes back only with --downgrade, which drops what the newer revisions added, data included"
        )
    with database_errors(url, "migrate"):
        (command.downgrade if older else command.upgrade)(config, target or "base")
    return read_revision(url)


def read_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None: not migrated), from a blocking caller."""

    async def read() -> str | None:
        engine = create_engine(url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


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

    with database_errors(engine.url, connect_action(engine.url)):
        async with engine.connect() as connection:
            return await connection.run_sync(read)


def _refuse_unknown(current: str | None, url: str) -> None:
    """Refuse a database at a revision these migrations do not hold: a newer cloud-sync migrated it, and
    neither migrating nor serving it with this one can be right."""
    script = ScriptDirectory.from_config(alembic_config(url))
    if current is not None and current not in {r.revision for r in script.walk_revisions()}:
        raise CloudSyncError(
            f"the database at {shown_url(url)} is at revision {current}, which this cloud-sync does not "
            "know: it was migrated by a newer version; run that version"
        )


async def require_current(engine: AsyncEngine, url: str) -> None:
    """Refuse a database that is not migrated to the newest revision, saying what to run."""
    current, head = await current_revision(engine), head_revision()
    if current == head:
        return
    _refuse_unknown(current, url)
    state = "not migrated" if current is None else f"at revision {current}, the code needs {head}"
    raise CloudSyncError(f"the database is {state}: run `cloud-sync migrate --db {shown_url(url)}` first")
