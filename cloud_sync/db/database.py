"""Database URLs, engines and the schema the cloud keeps (the seed's tables plus its own)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic.util import CommandError
from sqlalchemy import Engine, MetaData, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.changes import ChangeLoggingSession
from cloud_sync.db.tables import CLOUD_METADATA
from cloud_sync.errors import CloudSyncError, reason
from models.base_server import BASE_METADATA
from models.store_server import STORE_METADATA

DEFAULT_DB_URL = "sqlite:///./var/cloud.db"

# Creation order matters: the cloud's tables point into the seed's.
SCHEMA: tuple[MetaData, ...] = (BASE_METADATA, STORE_METADATA, CLOUD_METADATA)

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str) -> str:
    """`sqlite:///path` or `postgresql://...` as the URL of its asyncio driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise CloudSyncError(f"not a database URL: {shown_url(url)!r}") from err
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise CloudSyncError(f"unsupported database {backend!r} in {url!r}: use sqlite:/// or postgresql://")
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise CloudSyncError("an in-memory SQLite database would vanish between commands: give a file path")
    return parsed.render_as_string(hide_password=False)


def shown_url(url: str | URL) -> str:
    """The URL as it may be printed or logged: a password in it becomes ***, and a driver name is dropped
    (postgresql+asyncpg:// is shown as postgresql://, as the user gave it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", str(url))
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


@contextlib.contextmanager
def database_errors(url: str | URL, action: str = "use") -> Iterator[None]:
    """The one place where SQLAlchemy's, Alembic's, the drivers' and the network's errors on the database
    at `url` become a CloudSyncError naming the database and the problem: `cannot ACTION the database at
    URL: why`."""
    try:
        yield
    except (SQLAlchemyError, CommandError, OSError) as err:
        raise CloudSyncError(f"cannot {action} the database at {shown_url(url)}: {reason(err)}") from err


def connect_action(url: str | URL) -> str:
    """The words for failing to reach the database: "open" a SQLite file, "connect to" a server."""
    return "open" if make_url(url).get_backend_name() == "sqlite" else "connect to"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off in SQLite unless asked for, per connection; WAL lets readers run beside a writer.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An asyncio engine for a `--db` URL; a SQLite file's folder is created if missing.

    An error's text never carries the statement's values (`hide_parameters`): they may be secrets or
    biometrics (password hashes, card keys, face embeddings), and an unexpected error is logged whole.

    Pools are sized so that connections are reused, not reopened under load: SQLite serialises writers
    anyway, and each aiosqlite connection is a thread, so a few suffice; PostgreSQL gets one per likely
    concurrent request. No pre-ping: it costs a round trip per checkout, and a connection that died with a
    restarted server is discarded by the pool on its first error.
    """
    driver_url = make_url(async_url(url))
    if driver_url.get_backend_name() == "sqlite":
        Path(driver_url.database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            driver_url, pool_size=4, max_overflow=0, pool_timeout=60, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        driver_url, pool_size=20, max_overflow=20, pool_recycle=3600, hide_parameters=True
    )


def sqlite_sync_engine(engine: AsyncEngine, *, busy_timeout_ms: int) -> Engine:
    """A blocking engine on the same SQLite file as `engine`, with the same pragmas except the busy timeout
    (how long a statement waits for another connection's lock), for work done whole in one call."""

    def pragmas(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")

    sync = create_sync_engine(
        engine.url.set(drivername="sqlite"), pool_size=1, max_overflow=0, hide_parameters=True
    )
    event.listen(sync, "connect", pragmas)
    return sync


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Every session logs changes to the tables robots copy, in the same transaction
    # (cloud_sync/db/changes.py).
    return async_sessionmaker(
        engine, class_=AsyncSession, sync_session_class=ChangeLoggingSession, expire_on_commit=False
    )


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"
