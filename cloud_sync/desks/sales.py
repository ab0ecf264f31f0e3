"""The sale writer: the one place a sale is recorded, for the Store API's purchase desk and for ingest alike.

A sale is its purchase, the purchase's lines, its task, and the new balances of the counted items it sold.
Robots copy `store_items`, so whenever a balance changes the item is logged to the change log in the same
transaction (docs/sync.md, "Down-sync"; docs/decisions.md §30): a writer that skipped it would leave robots
selling from the old balance. A robot's sale's task (its `additional_data` names the robot) is logged too:
it goes down to that robot, which hands the order over once the store marks it ready. One writer per
database, each a fixed number of statements whatever the size of the group (docs/decisions.md §13, §21):

- SQLite (`write_sqlite`): a blocking SQLAlchemy `Connection` (the desk's own on the loop's thread, or
  ingest's aiosqlite one through `run_sync`); the inserts on sqlite3's executemany (`SqliteInsert`).
- PostgreSQL (`write_postgres`): asyncpg's own connection, one statement over arrays for the rows, and the
  log built in the database (`changes.pg_log_statement`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, Table, bindparam, update

from cloud_sync.db import changes
from models.store_server import STORE_METADATA

_ITEMS = STORE_METADATA.tables["store_items"]


@dataclass
class Sales:
    """Sales to record, rows as column dicts: `purchases` (id, store_id, user_id, created_at), `lines` (id,
    purchase_id, store_item_id, count), `tasks` (id, store_id, user_id, purchase_id, is_ready, created_at),
    and `balances`, the counted items' new balances by item id."""

    purchases: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    balances: dict[uuid.UUID, int] = field(default_factory=dict)


class SqliteInsert:
    """An INSERT of many rows on sqlite3's own executemany, each value converted by SQLAlchemy's own bind
    processor for its column (so stored exactly as SQLAlchemy stores it), without SQLAlchemy's per-row
    machinery, which took as long as everything else ingest does with a row (py-spy, 500-event batches)."""

    def __init__(self, table: Table, text: frozenset[str] = frozenset()) -> None:
        self._table = table
        self._text = text  # columns whose values are already what is stored (JSON text)
        self._prepared: dict[tuple[str, ...], tuple[str, list[Any]]] = {}

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        columns = tuple(rows[0])
        if columns not in self._prepared:
            dialect = conn.dialect
            names = ", ".join(columns)
            sql = f"INSERT INTO {self._table.name} ({names}) VALUES ({', '.join('?' * len(columns))})"
            self._prepared[columns] = (
                sql,
                [
                    None
                    if c in self._text
                    else self._table.c[c].type.dialect_impl(dialect).bind_processor(dialect)
                    for c in columns
                ],
            )
        sql, processors = self._prepared[columns]
        pairs = list(zip(columns, processors, strict=True))
        conn.exec_driver_sql(
            sql, [tuple(row[c] if p is None else p(row[c]) for c, p in pairs) for row in rows]
        )


_SQLITE_BALANCE: Final = (
    update(_ITEMS).where(_ITEMS.c.id == bindparam("item_id")).values(balance=bindparam("left"))
)
_SQLITE_INSERTS: Final = (
    ("purchases", SqliteInsert(STORE_METADATA.tables["purchases"])),
    ("lines", SqliteInsert(STORE_METADATA.tables["purchase_items"])),
    ("tasks", SqliteInsert(STORE_METADATA.tables["tasks"])),
)


def write_sqlite(conn: Connection, sales: Sales) -> None:
    """Record `sales` in `conn`'s transaction (the write lock already taken), and log the items whose
    balance changed."""
    if sales.balances:
        conn.execute(_SQLITE_BALANCE, [{"item_id": i, "left": n} for i, n in sales.balances.items()])
    for name, insert in _SQLITE_INSERTS:
        rows: list[dict[str, Any]] = getattr(sales, name)
        if rows:
            insert.run(conn, rows)
    if sales.balances:
        changes.log_upserts(conn, "store_items", list(sales.balances))
    robots_tasks = [row["id"] for row in sales.tasks if row.get("additional_data")]
    if robots_tasks:  # a robot's sale: its task goes down to it
        changes.log_upserts(conn, "tasks", robots_tasks)


# PostgreSQL: every row of a group's sales in one statement and one round trip (arrays, one element per row).
_PG_SALES: Final = """
WITH stock AS (
    UPDATE store_items SET balance = sold.balance
    FROM unnest($1::uuid[], $2::int[]) AS sold(id, balance)
    WHERE store_items.id = sold.id
), bought AS (
    INSERT INTO purchases (id, store_id, user_id, created_at)
    SELECT * FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[])
), lines AS (
    INSERT INTO purchase_items (id, purchase_id, store_item_id, count)
    SELECT * FROM unnest($7::uuid[], $8::uuid[], $9::uuid[], $10::int[])
)
INSERT INTO tasks (id, store_id, user_id, purchase_id, is_ready, created_at, additional_data)
SELECT * FROM unnest($11::uuid[], $12::uuid[], $13::uuid[], $14::uuid[], $15::bool[], $16::timestamptz[],
                     $17::text[]::json[])
"""
_PG_LOG_TASKS: Final = changes.pg_log_statement("tasks")
_PG_LOG_STOCK: Final = changes.pg_log_statement("store_items")


def _column(rows: Sequence[dict[str, Any]], name: str) -> list[Any]:
    return [row[name] for row in rows]


async def write_postgres(raw: Any, sales: Sales, now: dt.datetime) -> None:
    """Record `sales` on asyncpg connection `raw`, in its transaction (the items' rows already locked),
    and log the items whose balance changed, stamped `now`."""
    if not (sales.purchases or sales.balances):
        return
    purchases, lines, tasks = sales.purchases, sales.lines, sales.tasks
    await raw.execute(
        _PG_SALES,
        list(sales.balances),
        list(sales.balances.values()),
        _column(purchases, "id"),
        _column(purchases, "store_id"),
        _column(purchases, "user_id"),
        _column(purchases, "created_at"),
        _column(lines, "id"),
        _column(lines, "purchase_id"),
        _column(lines, "store_item_id"),
        _column(lines, "count"),
        _column(tasks, "id"),
        _column(tasks, "store_id"),
        _column(tasks, "user_id"),
        _column(tasks, "purchase_id"),
        _column(tasks, "is_ready"),
        _column(tasks, "created_at"),
        [_json(row.get("additional_data")) for row in tasks],
    )
    robots_tasks = [row["id"] for row in tasks if row.get("additional_data")]
    if sales.balances or robots_tasks:
        await raw.execute(changes.PG_LOG_LOCK)
    if sales.balances:
        await raw.execute(_PG_LOG_STOCK, list(sales.balances), now)
    if robots_tasks:
        await raw.execute(_PG_LOG_TASKS, robots_tasks, now)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
