"""Applying down-sync's messages to the robot's copies of the cloud's data (docs/sync.md, "Down-sync").

Each call is one transaction on the caller's connection: the rows and the scope's cursor move together, so
a robot killed mid-message applies that message again, and applying a change twice changes nothing (an upsert
or a delete by key).

A snapshot replaces the robot's copy of a scope: its first part marks every row that last came in that scope
as stale (`sync_scope` gets STALE appended), each part's rows take the scope back, and the last part deletes
what is still stale and sets the cursor. A snapshot cut short leaves rows marked stale but in place (still
used), and the next snapshot starts over.

Face embeddings (`face_embeddings`) are biometric data and never land in a clear-text table: an upsert of a
new one goes to a FaceSink, which seals it into a row of the robot's `faces` table (robot_agent/faces/,
injected by the caller: this layer holds no key); an upsert of one already there only takes the scope. A
delete, a snapshot and a withdrawn scope remove cloud faces by their `sync_scope` like any replicated row,
with no key needed; a local face (`sync_scope` None) is never touched. A face that came last in another
scope is left to that scope: the cloud withdraws a face from one train and sends it again to the others
that still want it (cloud_sync/db/changes.py), in whichever order the robot applies the two.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from sqlalchemy import Column, Connection, Dialect, Table, bindparam, case, delete, func, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import insert

from models.sync_changes import REPLICATED, Change, Changes, ChangesRefused, binary_of
from robot_agent.store.tables import (
    ROBOT_METADATA,
    EnrolledFace,
    OutboxRow,
    RobotPurchase,
    RobotPurchaseItem,
    SyncCursor,
)

STALE: Final = "~stale"
_CURSORS: Final = SyncCursor.__table__  # type: ignore[attr-defined]
_OUTBOX: Final = OutboxRow.__table__  # type: ignore[attr-defined]
_PURCHASES: Final = RobotPurchase.__table__  # type: ignore[attr-defined]
_LINES: Final = RobotPurchaseItem.__table__  # type: ignore[attr-defined]
_FACES: Final = EnrolledFace.__table__  # type: ignore[attr-defined]
SEALED: Final = "face_embeddings"  # goes to sealed rows of `faces`, never to a table of its own


@dataclass(frozen=True)
class CloudFace:
    """A face embedding as down-sync brings it, for a FaceSink to seal: `vector` is float32 little-endian
    bytes. No repr of the vector (biometric data)."""

    id: uuid.UUID
    user_id: uuid.UUID
    embedder: str
    vector: bytes = field(repr=False)


class FaceSink(Protocol):
    """Seals faces down-sync brings into rows of the robot's `faces` table, in the caller's transaction
    (robot_agent/faces/arrivals.py)."""

    def add(self, conn: Connection, scope: str, faces: Sequence[CloudFace]) -> None: ...


@dataclass
class FaceTally:
    """What applying messages did to the robot's faces: the caller refreshes its matcher when faces came or
    went, empties the write-ahead log after deletes, and says once that faces were dropped (no sink)."""

    added: int = 0
    deleted: int = 0
    dropped: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.deleted)


def _from_json(column: Column[Any]) -> Callable[[Any], Any] | None:
    """How a column's JSON value becomes what its SQLAlchemy type takes (None: as it is)."""
    # A TypeDecorator (UtcDateTime) reports `object`; its underlying type knows.
    kind = getattr(column.type, "impl_instance", column.type).python_type
    if kind is uuid.UUID:
        return uuid.UUID
    if kind is dt.datetime:
        return dt.datetime.fromisoformat
    if kind is dt.date:
        return dt.date.fromisoformat
    return None


_TABLES: Final = {name: ROBOT_METADATA.tables[name] for name in REPLICATED if name != SEALED}


@dataclass(frozen=True)
class _Upsert:
    """One table's upsert, compiled once: its SQL and, per column, JSON value -> stored value.

    The rows go to the driver's executemany as tuples, each value passed through the column type's own bind
    processor, so they are stored exactly as SQLAlchemy stores them (UUIDs as 32 hex digits, times in UTC),
    without building a statement per run: the robot applies 100,000 rows of a first sync this way."""

    sql: str
    columns: tuple[str, ...]
    convert: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def of(cls, table: Table, dialect: Dialect) -> _Upsert:
        key = REPLICATED[table.name].key
        names = tuple(c.name for c in table.columns)
        statement = insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=[key], set_={c: statement.excluded[c] for c in names if c != key}
        )
        compiled = statement.compile(dialect=dialect)
        if list(compiled.positiontup or ()) != list(names):  # the tuples below are in column order
            raise AssertionError(f"{table.name}: parameters {compiled.positiontup}, columns {names}")
        convert = []
        for column in table.columns:
            parse, bind = _from_json(column), column.type.bind_processor(dialect)
            convert.append(_compose(parse, bind))
        return cls(str(compiled), names, tuple(convert))

    def rows(self, values: Iterable[Mapping[str, Any]], scope: str) -> list[tuple[Any, ...]]:
        """The driver's parameters for `values` (rows as JSON), each row taken into `scope`."""
        pairs = list(zip(self.columns, self.convert, strict=True))
        return [
            tuple(scope if n == "sync_scope" else _stored(f, value[n]) for n, f in pairs) for value in values
        ]


def _stored(convert: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if convert is None or value is None else convert(value)


def _compose(
    parse: Callable[[Any], Any] | None, bind: Callable[[Any], Any] | None
) -> Callable[[Any], Any] | None:
    if parse is None or bind is None:
        return parse or bind
    return lambda value: bind(parse(value))


@functools.cache
def _upsert(table_name: str) -> _Upsert:
    return _Upsert.of(_TABLES[table_name], sqlite.dialect())


def table(name: str) -> Table:
    """The robot's copy of the cloud's table `name`."""
    return _TABLES[name]


def cursors(conn: Connection) -> dict[str, int]:
    return {
        scope: change_id for scope, change_id in conn.execute(select(_CURSORS.c.scope, _CURSORS.c.change_id))
    }


def set_cursor(conn: Connection, scope: str, change_id: int) -> None:
    statement = insert(_CURSORS).values(scope=scope, change_id=change_id)
    conn.execute(statement.on_conflict_do_update(index_elements=["scope"], set_={"change_id": change_id}))


def _apply(
    conn: Connection, scope: str, changes: Iterable[Change], faces: FaceSink | None, tally: FaceTally
) -> int:
    """Apply changes in order, each run of one table and op as one executemany. Returns how many."""
    applied = 0
    run: list[Change] = []

    def flush() -> None:
        if not run:
            return
        if run[0].table == SEALED:
            _apply_faces(conn, scope, run, faces, tally)
            run.clear()
            return
        table = _TABLES[run[0].table]
        key = REPLICATED[run[0].table].key
        if run[0].op == "delete":
            parse = _from_json(table.c[key])
            conn.execute(
                delete(table).where(table.c[key] == bindparam("k")),
                [{"k": _stored(parse, c.key)} for c in run],
            )
        else:
            upsert = _upsert(run[0].table)
            conn.exec_driver_sql(upsert.sql, upsert.rows((c.value or {} for c in run), scope))
            if run[0].table == "store_items":
                _less_unsent_sales(conn, [uuid.UUID(c.key) for c in run])
        run.clear()

    for change in changes:
        if run and (run[0].table, run[0].op) != (change.table, change.op):
            flush()
        run.append(change)
        applied += 1
    flush()
    return applied


def _apply_faces(
    conn: Connection, scope: str, run: Sequence[Change], faces: FaceSink | None, tally: FaceTally
) -> None:
    """A run of face embedding changes: deletes remove cloud faces that last came in `scope`; upserts of
    faces already here take the scope, new ones go to `faces` to be sealed (or are counted as dropped)."""
    if run[0].op == "delete":
        tally.deleted += _delete_faces(conn, _FACES.c.id.in_([uuid.UUID(c.key) for c in run]), scope)
        return
    arrived = {face.id: face for face in map(_cloud_face, run)}  # the last of an id, as an upsert takes it
    held = set(
        conn.execute(
            select(_FACES.c.id).where(_FACES.c.id.in_(list(arrived)), _FACES.c.sync_scope.is_not(None))
        ).scalars()
    )
    if held:
        conn.execute(update(_FACES).where(_FACES.c.id.in_(list(held))).values(sync_scope=scope))
    new = [face for face_id, face in arrived.items() if face_id not in held]
    if not new:
        return
    if faces is None:
        tally.dropped += len(new)
        return
    faces.add(conn, scope, new)
    tally.added += len(new)


def _cloud_face(change: Change) -> CloudFace:
    value = change.value or {}
    vector = binary_of(value.get("vector"), f"face embedding {change.key}: vector")
    if not vector or len(vector) % 4:
        raise ChangesRefused(f"face embedding {change.key}: {len(vector)} bytes is not float32s")
    return CloudFace(uuid.UUID(change.key), uuid.UUID(str(value["user_id"])), str(value["embedder"]), vector)


def _delete_faces(conn: Connection, which: Any, scope: str) -> int:
    """Delete the cloud faces `which` selects that last came in `scope` (stale or not); how many."""
    conn.exec_driver_sql("PRAGMA secure_delete=ON")  # the store sets it; said again where it matters most
    in_scope = _FACES.c.sync_scope.in_([scope, scope + STALE])
    return int(conn.execute(delete(_FACES).where(which, in_scope)).rowcount)


def _less_unsent_sales(conn: Connection, item_ids: list[uuid.UUID]) -> None:
    """The cloud's stock of an item does not count this robot's sales still in its outbox: take them off
    again, so the robot does not sell what it has already sold. (A sale the cloud committed whose ack is
    still on its way is taken off twice until the next change of the item: too little stock, never too
    much.)"""
    lines, purchases = _LINES, _PURCHASES
    unsent = (
        select(lines.c.item_id, func.sum(lines.c.count).label("sold"))
        .join(purchases, purchases.c.id == lines.c.purchase_id)
        .where(purchases.c.event_seq.in_(select(_OUTBOX.c.seq)), lines.c.item_id.in_(item_ids))
        .group_by(lines.c.item_id)
    )
    for item_id, sold in conn.execute(unsent).all():
        take_off_stock(conn, item_id, int(sold))


def take_off_stock(conn: Connection, item_id: uuid.UUID, count: int) -> None:
    """Take `count` off the robot's copy of an item's stock, never below zero; an uncounted stock stays."""
    items = _TABLES["store_items"]
    left = items.c.balance - count
    conn.execute(
        update(items)
        .where(items.c.id == item_id, items.c.balance.is_not(None))
        .values(balance=case((left < 0, 0), else_=left))
    )


def apply_log(
    conn: Connection, message: Changes, *, faces: FaceSink | None = None, tally: FaceTally | None = None
) -> int | None:
    """Apply a "log" message; None (nothing done) if it starts after the robot's cursor: a gap, so the robot
    must ask again. Changes at or before the cursor were applied before and are skipped. Face embeddings go
    to `faces` (dropped without one); `tally` counts what happened to faces."""
    cursor = cursors(conn).get(message.scope, 0)
    if message.after > cursor:
        return None
    news = (c for c in message.changes if c.change_id > cursor)
    applied = _apply(conn, message.scope, news, faces, FaceTally() if tally is None else tally)
    if message.upto > cursor:
        set_cursor(conn, message.scope, message.upto)
    return applied


def apply_snapshot_part(
    conn: Connection, message: Changes, *, faces: FaceSink | None = None, tally: FaceTally | None = None
) -> int:
    """Apply one part of a snapshot (the caller checks the parts come in order, from part 0); faces and
    `tally` as for `apply_log`."""
    tally = FaceTally() if tally is None else tally
    if message.part == 0:
        for table in (*_TABLES.values(), _FACES):
            conn.execute(
                update(table)
                .where(table.c.sync_scope.in_([message.scope, message.scope + STALE]))
                .values(sync_scope=message.scope + STALE)
            )
    applied = _apply(conn, message.scope, message.changes, faces, tally)
    if message.last:
        for table in _TABLES.values():
            conn.execute(delete(table).where(table.c.sync_scope == message.scope + STALE))
        tally.deleted += _delete_faces(conn, _FACES.c.sync_scope == message.scope + STALE, message.scope)
        if message.upto == 0:  # the scope is withdrawn (a train no longer assigned): forget it altogether
            conn.execute(delete(_CURSORS).where(_CURSORS.c.scope == message.scope))
        else:
            set_cursor(conn, message.scope, message.upto)
    return applied


def count(conn: Connection, table_name: str) -> int:
    return int(conn.execute(select(func.count()).select_from(_TABLES[table_name])).scalar_one())
