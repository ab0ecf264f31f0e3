"""Ingest's reads and writes: a group of batches in one transaction, in a fixed number of statements.

`cloud_sync.sync.ingest` decides what a group does; a `Transaction` here records which events are new
(`claim`), reads what deciding needs (`read`), and writes the outcome (`write`, `dead_letters`). Each
backend has its own:
SQLAlchemy statements built once and run with executemany on SQLite (a writer holds the database's lock from
`BEGIN IMMEDIATE`, so nothing else can apply an event meanwhile); on PostgreSQL, asyncpg's own connection with
arrays (one statement, one round trip per step), where a second worker may apply the same event at the same
moment: `claim` inserts the events' ids first, and the unique key decides who applies each one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_sync.db import changes
from cloud_sync.db.tables import CLOUD_METADATA
from cloud_sync.desks import sales
from cloud_sync.sync import gaps
from models.base_server import BASE_METADATA
from models.store_server import STORE_METADATA

_TICKETS = BASE_METADATA.tables["tickets"]
_STORES = STORE_METADATA.tables["stores"]
_ITEMS = STORE_METADATA.tables["store_items"]
_PURCHASES = STORE_METADATA.tables["purchases"]
_TASKS = STORE_METADATA.tables["tasks"]
_APPLIED = CLOUD_METADATA.tables["sync_applied_events"]
_DEAD = CLOUD_METADATA.tables["sync_dead_letters"]
_CONFLICTS = CLOUD_METADATA.tables["sync_conflicts"]
_STATE = CLOUD_METADATA.tables["sync_robot_state"]
_RANGES = CLOUD_METADATA.tables["sync_seq_ranges"]


@dataclass
class Wanted:
    """The rows deciding a group needs, by id."""

    stores: set[uuid.UUID] = field(default_factory=set)
    items: set[uuid.UUID] = field(default_factory=set)
    purchases: set[uuid.UUID] = field(default_factory=set)
    tickets: set[uuid.UUID] = field(default_factory=set)
    tasks: set[uuid.UUID] = field(default_factory=set)


@dataclass(frozen=True)
class Stock:
    store_id: uuid.UUID
    balance: int | None  # None: not counted


@dataclass
class Reads:
    """Of the wanted rows, those that exist: stores, items, purchases, tickets (whether used) and tasks."""

    stores: set[uuid.UUID] = field(default_factory=set)
    items: dict[uuid.UUID, Stock] = field(default_factory=dict)
    purchases: set[uuid.UUID] = field(default_factory=set)
    tickets: dict[uuid.UUID, bool] = field(default_factory=dict)
    tasks: set[uuid.UUID] = field(default_factory=set)


@dataclass
class Writes(sales.Sales):
    """A group's outcome: its sales (purchases, lines, tasks, balances: written by
    `cloud_sync.desks.sales`), and conflicts, tickets used, tasks' readiness, and each robot's state
    (written only over an older `last_seq`)."""

    conflicts: list[dict[str, Any]] = field(default_factory=list)
    tickets_used: list[uuid.UUID] = field(default_factory=list)
    tasks_ready: dict[uuid.UUID, bool] = field(default_factory=dict)
    states: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DeadLetter:
    """A message ingest will never apply; `batch` is set when the robot is to be told (a verified batch)."""

    id: uuid.UUID
    robot: uuid.UUID | None
    batch: uuid.UUID | None
    topic: str
    reason: str
    detail: str
    payload: bytes
    seqs: tuple[int, ...] = ()  # of a batch that verified: they arrived, though none is applied


class Transaction(Protocol):
    async def claim(self, applied: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Record these `sync_applied_events` rows, except those whose event was applied before; return the
        ids recorded (the events this transaction applies)."""
        ...

    async def read(self, wanted: Wanted) -> Reads:
        """The wanted rows that exist; counted stock, tickets and tasks stay locked until commit."""
        ...

    async def write(self, writes: Writes, now: dt.datetime) -> None: ...

    async def dead_letters(self, letters: Sequence[DeadLetter], now: dt.datetime) -> None: ...

    async def seen(self, runs: dict[uuid.UUID, list[gaps.Run]]) -> None:
        """Add these runs of each robot's seqs to `sync_seq_ranges`, merged with the runs they touch."""
        ...


def _merged(
    runs: dict[uuid.UUID, list[gaps.Run]], touching: Iterable[tuple[uuid.UUID, int, int]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `sync_seq_ranges` rows to delete and to insert so that each robot's runs stay merged, given the
    stored runs that overlap or touch the new ones' span."""
    stored: dict[uuid.UUID, list[gaps.Run]] = {robot: [] for robot in runs}
    for robot, first, last in touching:
        stored[robot].append((first, last))
    gone: list[dict[str, Any]] = []
    made: list[dict[str, Any]] = []
    for robot, new in runs.items():
        old = sorted(stored[robot])
        merged = gaps.merge(old + new)
        if merged != old:
            gone.extend({"robot_id": robot, "first_seq": first} for first, _ in old)
            made.extend({"robot_id": robot, "first_seq": f, "last_seq": last} for f, last in merged)
    return gone, made


class Store(Protocol):
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """A transaction, committed when the block ends without an exception, rolled back otherwise."""
        ...

    async def close(self) -> None: ...


def store_for(engine: AsyncEngine) -> Store:
    return _PostgresStore(engine) if engine.dialect.name == "postgresql" else _SqliteStore(engine)


def _dead_letter_rows(letters: Iterable[DeadLetter], now: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": letter.id,
            "robot_id": letter.robot,
            "topic": letter.topic,
            "reason": letter.reason,
            "detail": letter.detail,
            "payload": letter.payload,
            "received_at": now,
        }
        for letter in letters
    ]


# SQLite: statements built once.
_SQLITE_IN_CHUNK: Final = 10_000  # SQLite allows 32,766 parameters a statement
_SQLITE_APPLIED = select(_APPLIED.c.event_id).where(_APPLIED.c.event_id.in_(bindparam("ids", expanding=True)))
_SQLITE_STORES = select(_STORES.c.id).where(_STORES.c.id.in_(bindparam("ids", expanding=True)))
_SQLITE_ITEMS = select(_ITEMS.c.id, _ITEMS.c.store_id, _ITEMS.c.balance).where(
    _ITEMS.c.id.in_(bindparam("ids", expanding=True))
)
_SQLITE_PURCHASES = select(_PURCHASES.c.id).where(_PURCHASES.c.id.in_(bindparam("ids", expanding=True)))
_SQLITE_TICKETS = select(_TICKETS.c.id, _TICKETS.c.used).where(
    _TICKETS.c.id.in_(bindparam("ids", expanding=True))
)
_SQLITE_TASKS = select(_TASKS.c.id).where(_TASKS.c.id.in_(bindparam("ids", expanding=True)))
_SQLITE_USED = update(_TICKETS).where(_TICKETS.c.id.in_(bindparam("ids", expanding=True))).values(used=True)
_SQLITE_READY = update(_TASKS).where(_TASKS.c.id == bindparam("task_id")).values(is_ready=bindparam("ready"))
_sqlite_state = sqlite_insert(_STATE)
_SQLITE_TOUCHING = select(_RANGES.c.robot_id, _RANGES.c.first_seq, _RANGES.c.last_seq).where(
    _RANGES.c.robot_id == bindparam("robot"),
    _RANGES.c.last_seq >= bindparam("low"),
    _RANGES.c.first_seq <= bindparam("high"),
)
_SQLITE_UNSEE = delete(_RANGES).where(
    and_(_RANGES.c.robot_id == bindparam("robot_id"), _RANGES.c.first_seq == bindparam("first_seq"))
)
_SQLITE_STATE = _sqlite_state.on_conflict_do_update(
    index_elements=[_STATE.c.robot_id],
    set_={
        "last_seq": _sqlite_state.excluded.last_seq,
        "last_batch_at": _sqlite_state.excluded.last_batch_at,
        "clock_skew_ms": _sqlite_state.excluded.clock_skew_ms,
    },
    where=_STATE.c.last_seq <= _sqlite_state.excluded.last_seq,
)


_SQLITE_APPLIED_INSERT: Final = sales.SqliteInsert(_APPLIED, frozenset({"data"}))
_SQLITE_CONFLICTS: Final = sales.SqliteInsert(_CONFLICTS)


def _chunks(ids: Iterable[uuid.UUID]) -> Iterable[list[uuid.UUID]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), _SQLITE_IN_CHUNK):
        yield ordered[start : start + _SQLITE_IN_CHUNK]


class _SqliteStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._engine.connect() as conn:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first, as the purchase desk does
            yield _SqliteTransaction(conn)
            await conn.commit()

    async def close(self) -> None:
        pass


class _SqliteTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def _rows(self, statement: Any, ids: Iterable[uuid.UUID]) -> list[Any]:
        rows: list[Any] = []
        for chunk in _chunks(ids):
            rows.extend(await self._conn.execute(statement, {"ids": chunk}))
        return rows

    async def claim(self, applied: list[dict[str, Any]]) -> set[uuid.UUID]:
        before = {row.event_id for row in await self._rows(_SQLITE_APPLIED, (a["event_id"] for a in applied))}
        new = [row for row in applied if row["event_id"] not in before]
        if new:
            await self._conn.run_sync(_SQLITE_APPLIED_INSERT.run, new)
        return {row["event_id"] for row in new}

    async def read(self, wanted: Wanted) -> Reads:
        reads = Reads()
        reads.stores = {row.id for row in await self._rows(_SQLITE_STORES, wanted.stores)}
        reads.items = {
            row.id: Stock(row.store_id, row.balance) for row in await self._rows(_SQLITE_ITEMS, wanted.items)
        }
        reads.purchases = {row.id for row in await self._rows(_SQLITE_PURCHASES, wanted.purchases)}
        reads.tickets = {row.id: row.used for row in await self._rows(_SQLITE_TICKETS, wanted.tickets)}
        reads.tasks = {row.id for row in await self._rows(_SQLITE_TASKS, wanted.tasks)}
        return reads

    async def write(self, writes: Writes, now: dt.datetime) -> None:
        conn = self._conn
        await conn.run_sync(sales.write_sqlite, writes)
        if writes.conflicts:
            await conn.run_sync(_SQLITE_CONFLICTS.run, writes.conflicts)
        for chunk in _chunks(writes.tickets_used):
            await conn.execute(_SQLITE_USED, {"ids": chunk})
        if writes.tasks_ready:
            await conn.execute(
                _SQLITE_READY, [{"task_id": t, "ready": r} for t, r in writes.tasks_ready.items()]
            )
        if writes.states:
            await conn.execute(_SQLITE_STATE, writes.states)
        # A ticket used is copied by robots too (docs/sync.md, "Down-sync"); the sale writer logs the stock.
        if writes.tickets_used:
            await conn.run_sync(changes.log_upserts, "tickets", writes.tickets_used)
        if writes.tasks_ready:  # a robot's tasks go down to it (models/sync_changes.py)
            await conn.run_sync(changes.log_upserts, "tasks", list(writes.tasks_ready))

    async def dead_letters(self, letters: Sequence[DeadLetter], now: dt.datetime) -> None:
        if letters:
            await self._conn.execute(insert(_DEAD), _dead_letter_rows(letters, now))

    async def seen(self, runs: dict[uuid.UUID, list[gaps.Run]]) -> None:
        touching: list[tuple[uuid.UUID, int, int]] = []
        for robot, new in runs.items():
            span = {"robot": robot, "low": new[0][0] - 1, "high": new[-1][1] + 1}
            touching.extend(tuple(row) for row in await self._conn.execute(_SQLITE_TOUCHING, span))
        gone, made = _merged(runs, touching)
        if gone:
            await self._conn.execute(_SQLITE_UNSEE, gone)
        if made:
            await self._conn.execute(insert(_RANGES), made)


# PostgreSQL: each step one statement over arrays. Ids are claimed, and rows locked, in id order, so that two
# workers' transactions always wait for each other in the same order and never deadlock.
_PG_CLAIM = """
INSERT INTO sync_applied_events (event_id, robot_id, seq, batch_id, type, data, robot_time, applied_at)
SELECT e.*, $8::timestamptz
FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::uuid[], $5::text[], $6::json[], $7::timestamptz[]) AS e
ORDER BY 1
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
_PG_STORES = "SELECT id FROM stores WHERE id = ANY($1::uuid[])"
_PG_ITEMS = "SELECT id, store_id, balance FROM store_items WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
_PG_PURCHASES = "SELECT id FROM purchases WHERE id = ANY($1::uuid[])"
_PG_TICKETS = "SELECT id, used FROM tickets WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
_PG_TASKS = "SELECT id FROM tasks WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
# Everything but the sales (`cloud_sync.desks.sales` writes those) in one statement.
_PG_WRITE = """
WITH used AS (
    UPDATE tickets SET used = true WHERE id = ANY($1::uuid[])
), ready AS (
    UPDATE tasks SET is_ready = r.is_ready
    FROM unnest($2::uuid[], $3::bool[]) AS r(id, is_ready)
    WHERE tasks.id = r.id
), conflicts AS (
    INSERT INTO sync_conflicts (id, robot_id, event_id, kind, detail, recorded_at)
    SELECT c.*, $9::timestamptz
    FROM unnest($4::uuid[], $5::uuid[], $6::uuid[], $7::text[], $8::text[]) AS c
)
INSERT INTO sync_robot_state AS s (robot_id, last_seq, last_batch_at, clock_skew_ms)
SELECT r.robot_id, r.last_seq, $9::timestamptz, r.skew
FROM unnest($10::uuid[], $11::int8[], $12::int8[]) AS r(robot_id, last_seq, skew)
ON CONFLICT (robot_id) DO UPDATE
SET last_seq = excluded.last_seq, last_batch_at = excluded.last_batch_at,
    clock_skew_ms = excluded.clock_skew_ms
WHERE s.last_seq <= excluded.last_seq
"""
_PG_LOG_TICKETS: Final = changes.pg_log_statement("tickets")
_PG_LOG_TASKS: Final = changes.pg_log_statement("tasks")
# The robots' runs are merged read-modify-write, so two workers must not merge one robot's at once: each holds
# an advisory lock per robot (key space "seqs", a robot's hash) until commit, taken in robot order as the last
# locks of the transaction, after every row lock, so waiting for one never closes a cycle.
_PG_ROBOT_LOCKS = f"""
SELECT pg_advisory_xact_lock({0x73657173}, hashtext(r::text))
FROM (SELECT unnest($1::uuid[]) AS r ORDER BY 1) AS robots
"""
_PG_TOUCHING = """
SELECT s.robot_id, s.first_seq, s.last_seq
FROM sync_seq_ranges AS s JOIN unnest($1::uuid[], $2::int8[], $3::int8[]) AS w(robot_id, low, high)
ON s.robot_id = w.robot_id AND s.last_seq >= w.low AND s.first_seq <= w.high
"""
_PG_UNSEE = """
DELETE FROM sync_seq_ranges AS s USING unnest($1::uuid[], $2::int8[]) AS d(robot_id, first_seq)
WHERE s.robot_id = d.robot_id AND s.first_seq = d.first_seq
"""
_PG_SEE = """
INSERT INTO sync_seq_ranges (robot_id, first_seq, last_seq)
SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int8[])
"""
_PG_DEAD = """
INSERT INTO sync_dead_letters (id, robot_id, topic, reason, detail, payload, received_at)
SELECT d.*, $7::timestamptz
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bytea[]) AS d
"""


class _PostgresStore:
    """On asyncpg's own connection, lent by SQLAlchemy's pool and invalidated on any error (as the purchase
    desk's), so that a connection in an unknown state is never lent again."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            try:
                async with raw.transaction():
                    yield _PostgresTransaction(raw)
            except BaseException:
                await conn.invalidate()
                raise

    async def close(self) -> None:
        pass


def _column(rows: Sequence[dict[str, Any]], name: str) -> list[Any]:
    return [row[name] for row in rows]


class _PostgresTransaction:
    def __init__(self, raw: Any) -> None:
        self._raw = raw

    async def claim(self, applied: list[dict[str, Any]]) -> set[uuid.UUID]:
        if not applied:
            return set()
        columns = ("event_id", "robot_id", "seq", "batch_id", "type", "data", "robot_time")
        rows = await self._raw.fetch(
            _PG_CLAIM, *(_column(applied, c) for c in columns), applied[0]["applied_at"]
        )
        return {uuid.UUID(bytes=row[0].bytes) for row in rows}

    async def _fetch(self, query: str, ids: set[uuid.UUID]) -> list[Any]:
        return list(await self._raw.fetch(query, list(ids))) if ids else []

    async def read(self, wanted: Wanted) -> Reads:
        reads = Reads()
        reads.stores = {row["id"] for row in await self._fetch(_PG_STORES, wanted.stores)}
        reads.items = {
            row["id"]: Stock(row["store_id"], row["balance"])
            for row in await self._fetch(_PG_ITEMS, wanted.items)
        }
        reads.purchases = {row["id"] for row in await self._fetch(_PG_PURCHASES, wanted.purchases)}
        reads.tickets = {row["id"]: row["used"] for row in await self._fetch(_PG_TICKETS, wanted.tickets)}
        reads.tasks = {row["id"] for row in await self._fetch(_PG_TASKS, wanted.tasks)}
        return reads

    async def write(self, writes: Writes, now: dt.datetime) -> None:
        await sales.write_postgres(self._raw, writes, now)
        conflicts = writes.conflicts
        await self._raw.execute(
            _PG_WRITE,
            writes.tickets_used,
            list(writes.tasks_ready),
            list(writes.tasks_ready.values()),
            _column(conflicts, "id"),
            _column(conflicts, "robot_id"),
            _column(conflicts, "event_id"),
            _column(conflicts, "kind"),
            _column(conflicts, "detail"),
            now,
            _column(writes.states, "robot_id"),
            _column(writes.states, "last_seq"),
            _column(writes.states, "clock_skew_ms"),
        )
        # A ticket used is copied by robots too (docs/sync.md, "Down-sync"); the sale writer logs the stock.
        if writes.tickets_used or writes.tasks_ready:
            await self._raw.execute(changes.PG_LOG_LOCK)
        if writes.tickets_used:
            await self._raw.execute(_PG_LOG_TICKETS, writes.tickets_used, now)
        if writes.tasks_ready:  # a robot's tasks go down to it (models/sync_changes.py)
            await self._raw.execute(_PG_LOG_TASKS, list(writes.tasks_ready), now)

    async def dead_letters(self, letters: Sequence[DeadLetter], now: dt.datetime) -> None:
        if letters:
            rows = _dead_letter_rows(letters, now)
            columns = ("id", "robot_id", "topic", "reason", "detail", "payload")
            await self._raw.execute(_PG_DEAD, *(_column(rows, c) for c in columns), now)

    async def seen(self, runs: dict[uuid.UUID, list[gaps.Run]]) -> None:
        robots = list(runs)
        await self._raw.execute(_PG_ROBOT_LOCKS, robots)
        rows = await self._raw.fetch(
            _PG_TOUCHING,
            robots,
            [runs[robot][0][0] - 1 for robot in robots],
            [runs[robot][-1][1] + 1 for robot in robots],
        )
        touching = [(uuid.UUID(bytes=row[0].bytes), row[1], row[2]) for row in rows]
        gone, made = _merged(runs, touching)
        if gone:
            await self._raw.execute(_PG_UNSEE, _column(gone, "robot_id"), _column(gone, "first_seq"))
        if made:
            await self._raw.execute(
                _PG_SEE, _column(made, "robot_id"), _column(made, "first_seq"), _column(made, "last_seq")
            )
