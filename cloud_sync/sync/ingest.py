"""Ingest: verify robots' batches, apply their events exactly once in one transaction, and say what to ack.

Transport-free: `Ingest.handle_group(messages)` returns, for each message from `up/batch`, the ack to publish
on the robot's `down/ack` (or None when nothing may be acked), and the MQTT worker only moves bytes
(docs/sync.md, "The acknowledgement rule"). A group of batches shares one transaction and one commit; `handle`
is a group of one.

- A payload that does not verify (unknown robot, no registered key, bad signature, malformed) is dead-lettered
  and not acked: it is not provably the robot's, so it must not make the robot set anything aside; a robot
  whose key was not yet registered keeps resending until it is.
- A verified batch whose events do not fit their types is dead-lettered and acked `dead_letter`: the robot
  sent it, and will set it aside with the reason.
- Otherwise every event not applied before is applied, recorded in `sync_applied_events` (the fleet's event
  log), all in one transaction; then the ack says `committed`. Disagreements with the cloud (a ticket used
  twice, an item sold beyond its balance, an unknown item) are applied as far as they can be and recorded in
  `sync_conflicts`, never dropped.

How: the whole group is decided in plain Python (`plan_group`) from a few set-based reads, then written with
a fixed number of statements whatever its size (`cloud_sync.sync.ingest_store`), as the purchase desk does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid_utils.compat import uuid7

from cloud_sync.sync import gaps
from cloud_sync.sync.ingest_store import DeadLetter, Reads, Wanted, Writes, store_for
from models.base_server import BASE_METADATA
from models.columns import utcnow
from models.sync_ack import AckStatus, BatchAck
from models.sync_batch import Batch, BatchEvent, BatchRefused, decode_batch, event_data, robot_in_topic
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

DEAD_LETTER_PAYLOAD_BYTES: Final = 64 * 1024
_ROBOTS = BASE_METADATA.tables["robots"]


@dataclass
class Verified:
    """A batch that verified, with its events' data parsed: what a group applies."""

    robot: uuid.UUID
    batch: Batch
    events: list[tuple[BatchEvent, EventData]]
    applied: int = 0
    conflicts: int = 0


_Event = tuple[Verified, BatchEvent, EventData]


class Ingest:
    """Applies robots' batches to the cloud database. One instance per process; safe to run several
    processes (each group is one transaction, and an event id is applied once whoever gets it)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._store = store_for(engine)
        self._keys: dict[uuid.UUID, bytes] = {}

    async def handle(self, topic: str, payload: bytes) -> BatchAck | None:
        """Apply one message from `up/batch`; returns the ack to publish, or None (nothing to ack)."""
        return (await self.handle_group([(topic, payload)]))[0]

    async def handle_group(self, messages: Sequence[tuple[str, bytes]]) -> list[BatchAck | None]:
        """Apply several messages from `up/batch` in one transaction; returns each one's ack (or None), in
        order. Raises (and stores nothing) if the transaction fails."""
        acks: list[BatchAck | None] = [None] * len(messages)
        letters: list[DeadLetter] = []
        verified: list[tuple[int, Verified]] = []
        for n, (topic, payload) in enumerate(messages):
            outcome = await self._verify(topic, payload)
            if isinstance(outcome, Verified):
                verified.append((n, outcome))
                continue
            letters.append(outcome)
            if outcome.robot is not None and outcome.batch is not None:
                acks[n] = BatchAck(
                    outcome.batch, AckStatus.DEAD_LETTER, reason=f"{outcome.reason}: {outcome.detail}"
                )
        group = [v for _, v in verified]
        now = utcnow()
        async with self._store.transaction() as tx:
            if group:
                unique = _candidates(group)
                claimed = await tx.claim(_applied_rows(unique, now))
                fresh = [candidate for candidate in unique if candidate[1].id in claimed]
                reads = await tx.read(_wanted(fresh))
                writes = plan_group(fresh, reads, now)
                writes.states = _states(group, now)
                await tx.write(writes, now)
            await tx.dead_letters(letters, now)
            seen = _seen(group, letters)
            if seen:
                await tx.seen(seen)
        for n, done in verified:
            log.info(
                "batch applied robot=%s batch=%s applied=%d skipped=%d conflicts=%d",
                done.robot,
                done.batch.id,
                done.applied,
                len(done.batch.events) - done.applied,
                done.conflicts,
            )
            acks[n] = BatchAck(
                done.batch.id,
                AckStatus.COMMITTED,
                applied=done.applied,
                skipped=len(done.batch.events) - done.applied,
                first_seq=done.batch.events[0].seq,
                last_seq=done.batch.events[-1].seq,
            )
        return acks

    async def close(self) -> None:
        await self._store.close()

    async def _verify(self, topic: str, payload: bytes) -> Verified | DeadLetter:
        robot = robot_in_topic(topic, "batch")
        if robot is None:
            return _letter(None, topic, "bad_topic", "not railbot/v1/robots/{uuid}/up/batch", payload)
        key = await self._key(robot)
        if key is None:
            return _letter(robot, topic, "unknown_robot", f"robot {robot} has no registered key", payload)
        try:
            batch = decode_batch(payload, robot, key)
        except BatchRefused as err:
            return _letter(robot, topic, err.reason, err.detail, payload)
        parsed: list[tuple[BatchEvent, EventData]] = []
        for event in batch.events:
            try:
                parsed.append((event, parse_event(event.type, event_data(event))))
            except (EventDataError, BatchRefused) as err:
                detail = f"event {event.seq} ({event.id}): {err}"
                letter = _letter(robot, topic, "bad_event", detail, payload, batch.id)
                return dataclasses.replace(letter, seqs=tuple(e.seq for e in batch.events))
        return Verified(robot, batch, parsed)

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


def _letter(
    robot: uuid.UUID | None,
    topic: str,
    reason: str,
    detail: str,
    payload: bytes,
    batch: uuid.UUID | None = None,
) -> DeadLetter:
    log.warning("dead letter robot=%s reason=%s: %s", robot, reason, detail)
    return DeadLetter(
        id=uuid7(),
        robot=robot,
        batch=batch,
        topic=topic[:255],
        reason=reason[:255],
        detail=detail,
        payload=payload[:DEAD_LETTER_PAYLOAD_BYTES],
    )


def _candidates(group: Sequence[Verified]) -> list[_Event]:
    """Every event of the group whose id is not earlier in the group (the first one of an id wins)."""
    seen: set[uuid.UUID] = set()
    unique = []
    for done in group:
        for event, data in done.events:
            if event.id not in seen:
                seen.add(event.id)
                unique.append((done, event, data))
    return unique


def _applied_rows(events: Iterable[_Event], now: dt.datetime) -> list[dict[str, Any]]:
    """The `sync_applied_events` rows of these events (`data` as JSON text)."""
    return [
        {
            "event_id": event.id,
            "robot_id": done.robot,
            "seq": event.seq,
            "batch_id": done.batch.id,
            "type": event.type,
            "data": data.model_dump_json(exclude={"type"}),
            "robot_time": data.at,
            "applied_at": now,
        }
        for done, event, data in events
    ]


def _wanted(fresh: Iterable[_Event]) -> Wanted:
    """What planning these events needs to read; counts each batch's applied events."""
    wanted = Wanted()
    for done, _, data in fresh:
        done.applied += 1
        if isinstance(data, PurchaseMade):
            wanted.stores.add(data.store_id)
            wanted.items.update(line.item_id for line in data.items)
            wanted.purchases.add(data.purchase_id)
        elif isinstance(data, TicketChecked):
            if data.verdict == "valid" and data.ticket_id is not None:
                wanted.tickets.add(data.ticket_id)
        elif isinstance(data, TaskUpdated):
            wanted.tasks.add(data.task_id)
    return wanted


def plan_group(fresh: Sequence[_Event], reads: Reads, now: dt.datetime) -> Writes:
    """Every effect of the events to apply, decided in group order as if they were applied one by one."""
    writes = Writes()
    balances = {item: stock.balance for item, stock in reads.items.items() if stock.balance is not None}
    purchases = set(reads.purchases)
    used = dict(reads.tickets)
    for done, event, data in fresh:
        conflicts = _Conflicts(writes, done.robot, event.id, now)
        if isinstance(data, PurchaseMade):
            _purchase(data, reads, balances, purchases, writes, conflicts)
        elif isinstance(data, TicketChecked):
            if data.verdict == "valid" and data.ticket_id is not None:
                if data.ticket_id not in used:
                    conflicts.add("unknown_ticket", f"ticket {data.ticket_id}")
                elif used[data.ticket_id]:
                    conflicts.add("ticket_used_twice", f"ticket {data.ticket_id}")
                else:
                    used[data.ticket_id] = True
                    writes.tickets_used.append(data.ticket_id)
        elif isinstance(data, TaskUpdated):
            if data.task_id in reads.tasks:
                writes.tasks_ready[data.task_id] = data.is_ready
            else:
                conflicts.add("unknown_task", f"task {data.task_id}")
        else:
            assert isinstance(data, EngineerAction)  # the log (sync_applied_events) is its whole effect
        done.conflicts += conflicts.count
    return writes


@dataclass
class _Conflicts:
    writes: Writes
    robot: uuid.UUID
    event: uuid.UUID
    now: dt.datetime
    count: int = 0

    def add(self, kind: str, detail: str) -> None:
        log.warning("sync conflict robot=%s event=%s kind=%s: %s", self.robot, self.event, kind, detail)
        self.writes.conflicts.append(
            {
                "id": uuid7(),
                "robot_id": self.robot,
                "event_id": self.event,
                "kind": kind,
                "detail": detail,
                "recorded_at": self.now,
            }
        )
        self.count += 1


def _purchase(
    data: PurchaseMade,
    reads: Reads,
    balances: dict[uuid.UUID, int],
    purchases: set[uuid.UUID],
    writes: Writes,
    conflicts: _Conflicts,
) -> None:
    """The passenger already has what they bought: the purchase is recorded whatever the cloud thinks of its
    stock, and a balance it takes below zero is set to zero and flagged."""
    wanted: dict[uuid.UUID, int] = {}
    for line in data.items:
        wanted[line.item_id] = wanted.get(line.item_id, 0) + line.count
    items = reads.items
    missing = [i for i in sorted(wanted) if i not in items or items[i].store_id != data.store_id]
    if data.store_id not in reads.stores or missing:
        what = (
            f"store {data.store_id}"
            if data.store_id not in reads.stores
            else "items " + ", ".join(map(str, missing))
        )
        conflicts.add("unknown_item", f"purchase {data.purchase_id}: {what}")
        return
    if data.purchase_id in purchases:
        conflicts.add("duplicate_purchase", f"purchase {data.purchase_id}")
        return
    purchases.add(data.purchase_id)
    met: list[dict[str, str]] = []  # what the robot is told, in the task it gets back
    for item_id, count in sorted(wanted.items()):
        if item_id not in balances:
            continue  # not counted
        balance = balances[item_id]
        if balance < count:
            detail = f"item {item_id}: {count} sold, {balance} in stock"
            conflicts.add("oversold", detail)
            met.append({"kind": "oversold", "detail": detail})
        balances[item_id] = writes.balances[item_id] = max(balance - count, 0)
    writes.purchases.append(
        {"id": data.purchase_id, "store_id": data.store_id, "user_id": data.user_id, "created_at": data.at}
    )
    writes.lines.extend(
        {"id": uuid7(), "purchase_id": data.purchase_id, "store_item_id": line.item_id, "count": line.count}
        for line in data.items
    )
    writes.tasks.append(
        {
            "id": uuid7(),
            "store_id": data.store_id,
            "user_id": data.user_id,
            "purchase_id": data.purchase_id,
            "is_ready": data.is_default_ready,
            # The robot that sold it, and the conflicts the sale met: the task goes down to that robot
            # (models/sync_changes.py), which so learns when the order is ready and what went wrong.
            "additional_data": {"robot_id": str(conflicts.robot), "conflicts": met},
            "created_at": data.at,
        }
    )


def _seen(group: Sequence[Verified], letters: Sequence[DeadLetter]) -> dict[uuid.UUID, list[gaps.Run]]:
    """Per robot, the runs of seqs that arrived in batches that verified, dead-lettered ones included: the
    robot sets those events aside on the dead-letter ack, so they will never arrive again."""
    seqs: dict[uuid.UUID, list[int]] = {}
    for done in group:
        seqs.setdefault(done.robot, []).extend(event.seq for event in done.batch.events)
    for letter in letters:
        if letter.robot is not None and letter.seqs:
            seqs.setdefault(letter.robot, []).extend(letter.seqs)
    return {robot: gaps.runs(seqs[robot]) for robot in sorted(seqs)}


def _states(group: Sequence[Verified], now: dt.datetime) -> list[dict[str, Any]]:
    """Per robot, its latest seq and clock skew (its `sent` against ours), from its batch with the highest
    seq: telemetry for the operator. The store writes them only over an older last_seq, since a batch sent
    again, or taken by another worker out of order, must not move last_seq back."""
    latest: dict[uuid.UUID, tuple[int, Batch]] = {}
    for done in group:
        last_seq = max(event.seq for event in done.batch.events)
        if done.robot not in latest or latest[done.robot][0] <= last_seq:
            latest[done.robot] = (last_seq, done.batch)
    now_ms = int(now.timestamp() * 1000)
    return [
        {
            "robot_id": robot,
            "last_seq": last_seq,
            "last_batch_at": now,
            "clock_skew_ms": now_ms - batch.sent_ms,
        }
        for robot, (last_seq, batch) in sorted(latest.items())  # rows locked in robot order, as all others
    ]
