"""The SQL that the seed's tables compile to, for a database administrator to read or review."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from sqlalchemy import MetaData, create_mock_engine
from sqlalchemy.sql.elements import ClauseElement

from models.base_server import BASE_METADATA
from models.store_server import STORE_METADATA

Dialect = Literal["postgresql", "sqlite"]
DatabaseName = Literal["base", "store"]

METADATA: dict[DatabaseName, MetaData] = {"base": BASE_METADATA, "store": STORE_METADATA}


def ddl_statements(database: DatabaseName, dialect: Dialect) -> Iterator[str]:
    """CREATE statements (types, tables, indexes) for one of the seed's databases, in dependency order."""
    statements: list[str] = []

    def collect(sql: ClauseElement, *_: Any, **__: Any) -> None:
        statements.append(str(sql.compile(dialect=engine.dialect)).strip())

    engine = create_mock_engine(f"{dialect}://", collect)
    METADATA[database].create_all(engine, checkfirst=False)
    yield from statements
