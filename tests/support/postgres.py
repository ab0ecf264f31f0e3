"""Throw-away PostgreSQL databases on the server the project's machines run on 127.0.0.1:5432."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from dataclasses import dataclass

import asyncpg

ADMIN_DSN = os.environ.get("RAILBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

HOW_TO_START = (
    "PostgreSQL must answer on 127.0.0.1:5432 with trust auth for user postgres "
    "(or set RAILBOT_TEST_POSTGRES to an admin DSN). Start an installed server with "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`; "
    "install one with `apt-get install postgresql`."
)


@dataclass(frozen=True)
class ThrowawayDatabase:
    name: str
    dsn: str

    @property
    def sqlalchemy_url(self) -> str:
        """The URL for SQLAlchemy's asyncpg dialect."""
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


def _dsn_for(database: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


async def _admin(sql: str) -> None:
    try:
        conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        raise RuntimeError(f"cannot reach PostgreSQL at {ADMIN_DSN}: {err}. {HOW_TO_START}") from err
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(sql: str) -> None:
    # Fixtures may be set up while an event loop runs (async tests); asyncpg gets a loop of its own.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(_admin(sql))
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def create_database() -> ThrowawayDatabase:
    """Create an empty database with a unique name."""
    name = f"railbot_test_{uuid.uuid4().hex[:12]}"
    _run(f'CREATE DATABASE "{name}"')
    return ThrowawayDatabase(name=name, dsn=_dsn_for(name))


def drop_database(database: ThrowawayDatabase) -> None:
    """Drop a database made by create_database, disconnecting anyone still in it."""
    _run(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
