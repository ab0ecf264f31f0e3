"""The outbox: every event the robot produces, kept until the cloud says it is committed (docs/sync.md).

`append` writes an event on the caller's connection, inside the caller's transaction, so the event and the
change it records commit together or not at all. The sender takes the oldest unsent events as a batch
(`take_batch`, which stamps them with the batch's id), sends it, and deletes its rows only on the cloud's
`committed` ack (`acknowledge`). Batches without an ack are sent again as they were (`unacknowledged`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import cbor2
from sqlalchemy import Connection, delete, func, insert, select, update
from uuid_utils.compat import uuid7

from models.sync_batch import EVENT_TYPE_MAX, BatchEvent
from robot_agent.clock import Clock
from robot_agent.errors import RobotAgentError
from robot_agent.store.tables import OutboxRow, RejectedEvent

MAX_BATCH_EVENTS: Final = 500
_OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
_REJECTED = RejectedEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Batch:
    """Events sent (or about to be) together under one id; `models.sync_batch.encode_batch` signs them."""

    id: uuid.UUID
    events: tuple[BatchEvent, ...]

    @property
    def first_seq(self) -> int:
        return self.events[0].seq

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq


@dataclass(frozen=True)
class Backlog:
    """What waits: events not yet acknowledged, how many of them are in batches sent, and how old the oldest
    is by the robot's wall clock (None: empty)."""

    events: int
    in_flight: int
    oldest_age_ms: int | None


class OutboxError(RobotAgentError):
    """An event that cannot go into the outbox (its type or data), named."""


def append(conn: Connection, type_: str, data: Mapping[str, Any], clock: Clock) -> int:
    """Add an event in the caller's transaction; returns its sequence number."""
    if not type_ or len(type_) > EVENT_TYPE_MAX or not type_.replace("_", "").replace(".", "").isalnum():
        raise OutboxError(f"event type {type_!r}: 1 to {EVENT_TYPE_MAX} letters, digits, underscores or dots")
    try:
        encoded = cbor2.dumps(dict(data), canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as err:
        raise OutboxError(f"event {type_}: its data cannot be encoded: {err}") from err
    row = {
        "id": uuid7(),
        "type": type_,
        "wall_ms": clock.wall_ms(),
        "mono_ms": clock.mono_ms(),
        "boot": clock.boot,
        "data": encoded,
    }
    seq: int = conn.execute(insert(_OUTBOX).values(row).returning(_OUTBOX.c.seq)).scalar_one()
    return seq


def _event(row: Any) -> BatchEvent:
    return BatchEvent(row.id, row.seq, row.type, row.wall_ms, row.mono_ms, row.boot, row.data)


def take_batch(conn: Connection, limit: int = MAX_BATCH_EVENTS) -> Batch | None:
    """The oldest events not yet in a batch, stamped with a new batch id (committed by the caller); None if
    nothing waits."""
    rows = conn.execute(
        select(_OUTBOX).where(_OUTBOX.c.batch.is_(None)).order_by(_OUTBOX.c.seq).limit(limit)
    ).all()
    if not rows:
        return None
    batch_id = uuid7()
    last = rows[-1].seq
    conn.execute(
        update(_OUTBOX).where(_OUTBOX.c.batch.is_(None), _OUTBOX.c.seq <= last).values(batch=batch_id)
    )
    return Batch(batch_id, tuple(_event(row) for row in rows))


def unacknowledged(conn: Connection) -> list[Batch]:
    """Batches sent and not acknowledged, oldest first, as they were sent: to send again after a reconnect."""
    rows = conn.execute(select(_OUTBOX).where(_OUTBOX.c.batch.is_not(None)).order_by(_OUTBOX.c.seq)).all()
    batches: dict[uuid.UUID, list[BatchEvent]] = {}
    for row in rows:
        batches.setdefault(row.batch, []).append(_event(row))
    return [Batch(batch_id, tuple(events)) for batch_id, events in batches.items()]


def acknowledge(conn: Connection, batch_id: uuid.UUID) -> int:
    """The cloud committed the batch: delete its events; returns how many (0: an unknown or repeated ack)."""
    return conn.execute(delete(_OUTBOX).where(_OUTBOX.c.batch == batch_id)).rowcount


def reject(conn: Connection, batch_id: uuid.UUID, reason: str) -> int:
    """The cloud dead-lettered the batch: move its events to `rejected_events` with the reason; returns
    how many."""
    rows = conn.execute(select(_OUTBOX).where(_OUTBOX.c.batch == batch_id)).all()
    if rows:
        conn.execute(
            insert(_REJECTED),
            [
                {
                    "seq": r.seq,
                    "id": r.id,
                    "type": r.type,
                    "wall_ms": r.wall_ms,
                    "data": r.data,
                    "batch": batch_id,
                    "reason": reason[:255],
                }
                for r in rows
            ],
        )
        conn.execute(delete(_OUTBOX).where(_OUTBOX.c.batch == batch_id))
    return len(rows)


def backlog(conn: Connection, clock: Clock) -> Backlog:
    row = conn.execute(
        select(
            func.count(),
            func.count(_OUTBOX.c.batch),
            func.min(_OUTBOX.c.wall_ms),
        )
    ).one()
    total, in_flight, oldest = row
    return Backlog(total, in_flight, None if oldest is None else max(0, clock.wall_ms() - oldest))


def decode_data(event: BatchEvent) -> dict[str, Any]:
    """An event's data as Python values (for tests and the engineers' view)."""
    data: dict[str, Any] = cbor2.loads(event.data)
    return data
