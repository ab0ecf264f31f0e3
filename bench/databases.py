"""Throw-away PostgreSQL databases for the benchmarks (the machine's server, trust auth)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator

import asyncpg

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _admin_execute(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database's URL; dropped (with any session still on it) at the end."""
    name = f"railbot_bench_{secrets.token_hex(6)}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
