"""Applying down-sync's messages to the robot's copies of the cloud's data (docs/sync.md, "Down-sync").

Each call is one transaction on the caller's connection: the rows and the scope's cursor move together, so
a robot killed mid-message applies that message again, and applying a change twice changes nothing (an upsert
or a delete by key).

A snapshot replaces the robot's copy of a scope: its first part marks every row that last came in that scope
as stale (`sync_scope` gets STALE appended), each part's rows take the scope back, and the last part deletes
what is still stale and sets the cursor. A snapshot cut short leaves rows marked stale but in place (still
used), and the next snapshot starts over.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from sqlalchemy import Connection, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.sqlite import insert

from models.sync_changes import REPLICATED, Change, Changes
from robot_agent.store.tables import ROBOT_METADATA, SyncCursor

STALE: Final = "~stale"
_CURSORS: Final = SyncCursor.__table__  # type: ignore[attr-defined]


def _converters(table: Table) -> dict[str, Callable[[Any], Any]]:
    """How each column's JSON value becomes what its SQLAlchemy type takes."""
    out: dict[str, Callable[[Any], Any]] = {}
    for column in table.columns:
        # A TypeDecorator (UtcDateTime) reports `object`; its underlying type knows.
        kind = getattr(column.type, "impl_instance", column.type).python_type
        if kind is uuid.UUID:
            out[column.name] = uuid.UUID
        elif kind is dt.datetime:
            out[column.name] = dt.datetime.fromisoformat
        elif kind is dt.date:
            out[column.name] = dt.date.fromisoformat
    return out


_TABLES: Final = {name: ROBOT_METADATA.tables[name] for name in REPLICATED}
_CONVERT: Final = {name: _converters(t) for name, t in _TABLES.items()}


def table(name: str) -> Table:
    """The robot's copy of the cloud's table `name`."""
    return _TABLES[name]


def _row(table_name: str, value: Mapping[str, Any], scope: str) -> dict[str, Any]:
    convert = _CONVERT[table_name]
    row = {k: (convert[k](v) if v is not None and k in convert else v) for k, v in value.items()}
    row["sync_scope"] = scope
    return row


def cursors(conn: Connection) -> dict[str, int]:
    return {
        scope: change_id for scope, change_id in conn.execute(select(_CURSORS.c.scope, _CURSORS.c.change_id))
    }


def set_cursor(conn: Connection, scope: str, change_id: int) -> None:
    statement = insert(_CURSORS).values(scope=scope, change_id=change_id)
    conn.execute(statement.on_conflict_do_update(index_elements=["scope"], set_={"change_id": change_id}))


def _apply(conn: Connection, scope: str, changes: Iterable[Change]) -> int:
    """Apply changes in order, each run of one table and op as one executemany. Returns how many."""
    applied = 0
    run: list[Change] = []

    def flush() -> None:
        if not run:
            return
        table = _TABLES[run[0].table]
        key = REPLICATED[run[0].table].key
        if run[0].op == "delete":
            conn.execute(
                delete(table).where(table.c[key] == bindparam("k")),
                [{"k": _key(table, key, c.key)} for c in run],
            )
        else:
            rows = [_row(c.table, c.value or {}, scope) for c in run]
            statement = insert(table)
            columns = [c.name for c in table.columns if c.name != key]
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[key], set_={c: statement.excluded[c] for c in columns}
                ),
                rows,
            )
        run.clear()

    for change in changes:
        if run and (run[0].table, run[0].op) != (change.table, change.op):
            flush()
        run.append(change)
        applied += 1
    flush()
    return applied


def _key(table: Table, key: str, text: str) -> Any:
    return uuid.UUID(text) if table.c[key].type.python_type is uuid.UUID else text


def apply_log(conn: Connection, message: Changes) -> int | None:
    """Apply a "log" message; None (nothing done) if it starts after the robot's cursor: a gap, so the robot
    must ask again. Changes at or before the cursor were applied before and are skipped."""
    cursor = cursors(conn).get(message.scope, 0)
    if message.after > cursor:
        return None
    applied = _apply(conn, message.scope, (c for c in message.changes if c.change_id > cursor))
    if message.upto > cursor:
        set_cursor(conn, message.scope, message.upto)
    return applied


def apply_snapshot_part(conn: Connection, message: Changes) -> int:
    """Apply one part of a snapshot (the caller checks the parts come in order, from part 0)."""
    if message.part == 0:
        for table in _TABLES.values():
            conn.execute(
                update(table)
                .where(table.c.sync_scope.in_([message.scope, message.scope + STALE]))
                .values(sync_scope=message.scope + STALE)
            )
    applied = _apply(conn, message.scope, message.changes)
    if message.last:
        for table in _TABLES.values():
            conn.execute(delete(table).where(table.c.sync_scope == message.scope + STALE))
        set_cursor(conn, message.scope, message.upto)
    return applied


def count(conn: Connection, table_name: str) -> int:
    return int(conn.execute(select(func.count()).select_from(_TABLES[table_name])).scalar_one())
