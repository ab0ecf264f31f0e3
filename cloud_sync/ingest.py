"""Ingest: verify a robot's batch, apply its events exactly once in one transaction, and say what to ack.

Transport-free: `Ingest.handle(topic, payload)` returns the ack to publish on the robot's `down/ack` (or None
when nothing may be acked), and the MQTT worker only moves bytes (docs/sync.md, "The acknowledgement rule").

- A payload that does not verify (unknown robot, no registered key, bad signature, malformed) is dead-lettered
  and not acked: it is not provably the robot's, so it must not make the robot set anything aside; a robot
  whose key was not yet registered keeps resending until it is.
- A verified batch whose events do not fit their types is dead-lettered and acked `dead_letter`: the robot
  sent it, and will set it aside with the reason.
- Otherwise every event not applied before is applied, recorded in `sync_applied_events` (the fleet's event
  log), all in one transaction; then the ack says `committed`. Disagreements with the cloud (a ticket used
  twice, an item sold beyond its balance, an unknown item) are applied as far as they can be and recorded in
  `sync_conflicts`, never dropped.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from uuid_utils.compat import uuid7

from cloud_sync.tables import CLOUD_METADATA
from models.base_server import BASE_METADATA
from models.columns import utcnow
from models.store_server import STORE_METADATA
from models.sync_batch import TOPIC_ROOT, Batch, BatchEvent, BatchRefused, decode_batch, event_data
from models.sync_events import (
    EngineerAction,
    EventData,
    EventDataError,
    PurchaseMade,
    TaskUpdated,
    TicketChecked,
    parse_event,
)

log = logging.getLogger(__name__)

TOPIC_PREFIX: Final = f"{TOPIC_ROOT}/"
DEAD_LETTER_PAYLOAD_BYTES: Final = 64 * 1024
_ROBOTS = BASE_METADATA.tables["robots"]
_TICKETS = BASE_METADATA.tables["tickets"]
_STORES = STORE_METADATA.tables["stores"]
_ITEMS = STORE_METADATA.tables["store_items"]
_PURCHASES = STORE_METADATA.tables["purchases"]
_PURCHASE_ITEMS = STORE_METADATA.tables["purchase_items"]
_TASKS = STORE_METADATA.tables["tasks"]
_APPLIED = CLOUD_METADATA.tables["sync_applied_events"]
_DEAD = CLOUD_METADATA.tables["sync_dead_letters"]
_CONFLICTS = CLOUD_METADATA.tables["sync_conflicts"]
_STATE = CLOUD_METADATA.tables["sync_robot_state"]


@dataclass(frozen=True)
class Applied:
    applied: int
    skipped: int
    conflicts: int


class _DeadLetter(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def robot_of(topic: str) -> uuid.UUID | None:
    """The robot named in `railbot/v1/robots/{robot}/up/batch`; None for any other topic."""
    parts = topic.removeprefix(TOPIC_PREFIX).split("/")
    if not topic.startswith(TOPIC_PREFIX) or parts[1:] != ["up", "batch"]:
        return None
    try:
        return uuid.UUID(parts[0])
    except ValueError:
        return None


class Ingest:
    """Applies robots' batches to the cloud database. One instance per process; safe to run several
    processes (each batch is one transaction, and an event id is applied once whoever gets it)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._keys: dict[uuid.UUID, bytes] = {}

    async def handle(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        """Apply one message from `up/batch`; returns the ack to publish, or None (nothing to ack)."""
        robot = robot_of(topic)
        if robot is None:
            await self._dead_letter(
                None, topic, "bad_topic", "not railbot/v1/robots/{uuid}/up/batch", payload
            )
            return None
        key = await self._key(robot)
        if key is None:
            await self._dead_letter(
                robot, topic, "unknown_robot", f"robot {robot} has no registered key", payload
            )
            return None
        try:
            batch = decode_batch(payload, robot, key)
        except BatchRefused as err:
            await self._dead_letter(robot, topic, err.reason, err.detail, payload)
            return None
        try:
            done = await self._apply(robot, batch)
        except _DeadLetter as err:
            await self._dead_letter(robot, topic, err.reason, err.detail, payload)
            return {"batch": str(batch.id), "status": "dead_letter", "reason": f"{err.reason}: {err.detail}"}
        log.info(
            "batch applied robot=%s batch=%s applied=%d skipped=%d conflicts=%d",
            robot,
            batch.id,
            done.applied,
            done.skipped,
            done.conflicts,
        )
        return {
            "batch": str(batch.id),
            "status": "committed",
            "applied": done.applied,
            "skipped": done.skipped,
            "first_seq": batch.events[0].seq,
            "last_seq": batch.events[-1].seq,
        }

    async def _key(self, robot: uuid.UUID) -> bytes | None:
        if robot in self._keys:
            return self._keys[robot]
        async with self._engine.connect() as conn:
            pem = (await conn.execute(select(_ROBOTS.c.public_key).where(_ROBOTS.c.id == robot))).scalar()
        if not pem:
            return None  # not cached: the key may be registered any moment
        public = serialization.load_pem_public_key(pem.encode())
        if not isinstance(public, Ed25519PublicKey):
            return None
        raw = public.public_bytes_raw()
        self._keys[robot] = raw
        return raw

    async def _dead_letter(
        self, robot: uuid.UUID | None, topic: str, reason: str, detail: str, payload: bytes
    ) -> None:
        log.warning("dead letter robot=%s reason=%s: %s", robot, reason, detail)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(_DEAD).values(
                    id=uuid7(),
                    robot_id=robot,
                    topic=topic[:255],
                    reason=reason[:255],
                    detail=detail,
                    payload=payload[:DEAD_LETTER_PAYLOAD_BYTES],
                    received_at=utcnow(),
                )
            )

    async def _apply(self, robot: uuid.UUID, batch: Batch) -> Applied:
        parsed: list[tuple[BatchEvent, EventData]] = []
        for event in batch.events:
            try:
                parsed.append((event, parse_event(event.type, event_data(event))))
            except (EventDataError, BatchRefused) as err:
                raise _DeadLetter("bad_event", f"event {event.seq} ({event.id}): {err}") from err
        async with self._engine.connect() as conn:
            if self._sqlite:
                await conn.exec_driver_sql(
                    "BEGIN IMMEDIATE"
                )  # the write lock first, as the purchase desk does
            ids = [event.id for event, _ in parsed]
            seen = set(
                (
                    await conn.execute(select(_APPLIED.c.event_id).where(_APPLIED.c.event_id.in_(ids)))
                ).scalars()
            )
            applied = conflicts = 0
            for event, data in parsed:
                if event.id in seen:
                    continue  # applied before (a batch sent again after a lost ack), or twice in this batch
                seen.add(event.id)
                conflicts += await _effect(conn, robot, event, data)
                await conn.execute(
                    insert(_APPLIED).values(
                        event_id=event.id,
                        robot_id=robot,
                        seq=event.seq,
                        batch_id=batch.id,
                        type=event.type,
                        data=data.model_dump(mode="json", exclude={"type"}),
                        robot_time=data.at,
                        applied_at=utcnow(),
                    )
                )
                applied += 1
            await _record_state(conn, robot, batch)
            await conn.commit()
        return Applied(applied=applied, skipped=len(parsed) - applied, conflicts=conflicts)


async def _conflict(
    conn: AsyncConnection, robot: uuid.UUID, event: BatchEvent, kind: str, detail: str
) -> int:
    log.warning("sync conflict robot=%s event=%s kind=%s: %s", robot, event.id, kind, detail)
    await conn.execute(
        insert(_CONFLICTS).values(
            id=uuid7(), robot_id=robot, event_id=event.id, kind=kind, detail=detail, recorded_at=utcnow()
        )
    )
    return 1


async def _effect(conn: AsyncConnection, robot: uuid.UUID, event: BatchEvent, data: EventData) -> int:
    """Apply one event's effect; returns the number of conflicts recorded."""
    if isinstance(data, PurchaseMade):
        return await _purchase(conn, robot, event, data)
    if isinstance(data, TicketChecked):
        if data.verdict != "valid" or data.ticket_id is None:
            return 0  # a refusal changes nothing but the log
        used = (await conn.execute(select(_TICKETS.c.used).where(_TICKETS.c.id == data.ticket_id))).first()
        if used is None:
            return await _conflict(conn, robot, event, "unknown_ticket", f"ticket {data.ticket_id}")
        if used.used:
            return await _conflict(conn, robot, event, "ticket_used_twice", f"ticket {data.ticket_id}")
        await conn.execute(update(_TICKETS).where(_TICKETS.c.id == data.ticket_id).values(used=True))
        return 0
    if isinstance(data, TaskUpdated):
        done = await conn.execute(
            update(_TASKS).where(_TASKS.c.id == data.task_id).values(is_ready=data.is_ready)
        )
        if done.rowcount == 0:
            return await _conflict(conn, robot, event, "unknown_task", f"task {data.task_id}")
        return 0
    assert isinstance(data, EngineerAction)
    return 0  # the log (sync_applied_events) is its whole effect


async def _purchase(conn: AsyncConnection, robot: uuid.UUID, event: BatchEvent, data: PurchaseMade) -> int:
    """The passenger already has what they bought: the purchase is recorded whatever the cloud thinks of its
    stock, and a balance it takes below zero is set to zero and flagged."""
    store = (await conn.execute(select(_STORES.c.id).where(_STORES.c.id == data.store_id))).first()
    wanted: dict[uuid.UUID, int] = {}
    for line in data.items:
        wanted[line.item_id] = wanted.get(line.item_id, 0) + line.count
    query = select(_ITEMS.c.id, _ITEMS.c.store_id, _ITEMS.c.balance).where(_ITEMS.c.id.in_(sorted(wanted)))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    items = {row.id: row for row in await conn.execute(query)}
    missing = [i for i in sorted(wanted) if i not in items or items[i].store_id != data.store_id]
    if store is None or missing:
        what = f"store {data.store_id}" if store is None else "items " + ", ".join(map(str, missing))
        return await _conflict(conn, robot, event, "unknown_item", f"purchase {data.purchase_id}: {what}")
    exists = (await conn.execute(select(_PURCHASES.c.id).where(_PURCHASES.c.id == data.purchase_id))).first()
    if exists is not None:
        return await _conflict(conn, robot, event, "duplicate_purchase", f"purchase {data.purchase_id}")
    conflicts = 0
    for item_id, count in sorted(wanted.items()):
        balance = items[item_id].balance
        if balance is None:
            continue
        if balance < count:
            conflicts += await _conflict(
                conn, robot, event, "oversold", f"item {item_id}: {count} sold, {balance} in stock"
            )
        await conn.execute(
            update(_ITEMS).where(_ITEMS.c.id == item_id).values(balance=max(balance - count, 0))
        )
    await conn.execute(
        insert(_PURCHASES).values(
            id=data.purchase_id, store_id=data.store_id, user_id=data.user_id, created_at=data.at
        )
    )
    await conn.execute(
        insert(_PURCHASE_ITEMS),
        [
            {
                "id": uuid7(),
                "purchase_id": data.purchase_id,
                "store_item_id": line.item_id,
                "count": line.count,
            }
            for line in data.items
        ],
    )
    await conn.execute(
        insert(_TASKS).values(
            id=uuid7(),
            store_id=data.store_id,
            user_id=data.user_id,
            purchase_id=data.purchase_id,
            is_ready=data.is_default_ready,
            created_at=data.at,
        )
    )
    return conflicts


async def _record_state(conn: AsyncConnection, robot: uuid.UUID, batch: Batch) -> None:
    """The robot's latest seq and clock skew (its `sent` against ours): telemetry for the operator."""
    now = utcnow()
    skew_ms = int(now.timestamp() * 1000) - batch.sent_ms
    last_seq = max(event.seq for event in batch.events)
    values = {"last_seq": last_seq, "last_batch_at": now, "clock_skew_ms": skew_ms}
    # A batch sent again, or taken by another worker out of order, must not move last_seq back.
    done = await conn.execute(
        update(_STATE).where(_STATE.c.robot_id == robot, _STATE.c.last_seq <= last_seq).values(**values)
    )
    if done.rowcount == 0:
        existing = (await conn.execute(select(_STATE.c.robot_id).where(_STATE.c.robot_id == robot))).first()
        if existing is None:
            await conn.execute(insert(_STATE).values(robot_id=robot, **values))
