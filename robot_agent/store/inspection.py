"""A read-only look into the robot's SQLite database for engineers: its tables and their rows, never a secret.

The database is opened with SQLite's `mode=ro` URI, so nothing done here can change what is stored, and it is
not migrated (`database.open_store` would). sqlite-utils reads it: table names, counts and rows without SQL
written by hand. Columns that hold secrets or biometrics are masked by their name (`is_secret`): the
engineers' password hashes, the auth cards' keyed hashes of card UIDs, ticket codes (what a passenger shows),
and, when they come, face embeddings. Binary columns (the outbox's CBOR event data) show their size only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import sqlite_utils

from robot_agent.errors import RobotAgentError

MASK: Final = "***"
# A column is secret if a word of its name (split at "_") is one of these; `public_key` is the exception.
SECRET_WORDS: Final = frozenset(
    {"password", "secret", "token", "hash", "key", "uid", "code", "embedding", "embeddings", "biometric"}
)
NOT_SECRET: Final = frozenset({"public_key"})

Value = str | int | float | None


class InspectionError(RobotAgentError):
    """The database cannot be read, or has no such table."""


def is_secret(column: str) -> bool:
    """Whether a column's values must never be shown, judged by its name."""
    name = column.lower()
    return name not in NOT_SECRET and not SECRET_WORDS.isdisjoint(name.split("_"))


@dataclass(frozen=True)
class TableSize:
    name: str
    rows: int


@dataclass(frozen=True)
class Rows:
    """Some rows of one table, secrets masked; `masked` names the columns that were."""

    table: str
    columns: tuple[str, ...]
    masked: tuple[str, ...]
    rows: tuple[tuple[Value, ...], ...]


class Inspection:
    """The robot's database opened read-only; close it (or use `with`) when done."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise InspectionError(f"no database at {path}")
        self.path = path
        self.db: sqlite_utils.Database  # read-only: SQLite refuses any write on it
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as err:
            raise InspectionError(f"{path}: {err}") from err
        self.db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
        try:
            self._tables = self.db.table_names()
        except sqlite3.DatabaseError as err:  # "file is not a database", a locked or unreadable file
            conn.close()
            raise InspectionError(f"{path}: {err}") from err

    def __enter__(self) -> Inspection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def tables(self) -> list[TableSize]:
        """Every table, by name, with its row count."""
        return [TableSize(name, self.db.table(name).count) for name in sorted(self._tables)]

    def rows(self, table: str, limit: int) -> Rows:
        """The first `limit` rows of `table` in storage order, secrets masked."""
        if table not in self._tables:
            raise InspectionError(
                f"no table {table!r} in {self.path}; tables: {', '.join(sorted(self._tables))}"
            )
        columns = tuple(column.name for column in self.db.table(table).columns)
        masked = tuple(column for column in columns if is_secret(column))
        rows = tuple(
            tuple(_shown(column, row[column]) for column in columns)
            for row in self.db.table(table).rows_where(limit=limit)
        )
        return Rows(table, columns, masked, rows)


def _shown(column: str, value: object) -> Value:
    if value is None:
        return None
    if is_secret(column):
        return MASK
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    assert isinstance(value, str | int | float)
    return value
