"""The robot's sender: drains the outbox in signed batches and deletes them on the cloud's ack (docs/sync.md).

It takes the oldest events as a batch, signs it (`models.sync_batch`), publishes it at QoS 1 and keeps it in
flight until `down/ack` says `committed` (then its rows are deleted) or `dead_letter` (then they move aside
with the reason, so one bad event cannot block the rest). A batch without an ack within `ack_timeout_s`, and
every batch in flight when the link comes back, is published again with the same id and events; the cloud
skips events it has applied, so sending again is always safe. SQLite work runs in a thread, off the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from models.sync_batch import encode_batch
from robot_agent.store import outbox
from robot_agent.store.outbox import Backlog, Batch, Clock

log = logging.getLogger(__name__)

MAX_IN_FLIGHT: Final = 8
ACK_TIMEOUT_S: Final = 10.0
IDLE_POLL_S: Final = 0.5


class Link(Protocol):
    """What the sender needs of the robot's MQTT link (robot_agent.sync.mqtt)."""

    @property
    def connected(self) -> bool: ...

    async def wait_connected(self) -> None: ...

    async def publish(self, topic_suffix: str, payload: bytes) -> None:
        """Resolve on a successful PUBACK; raise if refused or if the link drops first."""
        ...

    def messages(self, suffix: str) -> AsyncIterator[bytes]:
        """The payloads the cloud sends on `down/{suffix}`."""
        ...


@dataclass
class _InFlight:
    batch: Batch
    sent_at: float


@dataclass(frozen=True)
class Ack:
    batch: uuid.UUID
    committed: bool
    reason: str


class AckError(ValueError):
    """A `down/ack` message that is not one (the sender logs it and carries on)."""


def parse_ack(payload: bytes) -> Ack:
    try:
        message = json.loads(payload)
        batch = uuid.UUID(message["batch"])
        status = message["status"]
    except (ValueError, KeyError, TypeError) as err:
        raise AckError(f"not an ack: {err}") from err
    if status not in ("committed", "dead_letter"):
        raise AckError(f"ack status {status!r}")
    return Ack(batch, status == "committed", str(message.get("reason", "")))


class Sender:
    """One robot's sender. `run()` until cancelled; `wake()` after committing new events (it also polls)."""

    def __init__(
        self,
        store: Engine,
        link: Link,
        robot: uuid.UUID,
        key: Ed25519PrivateKey,
        clock: Clock,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
        batch_events: int = outbox.MAX_BATCH_EVENTS,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self._store = store
        self._link = link
        self._robot = robot
        self._key = key
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._batch_events = batch_events
        self._ack_timeout_s = ack_timeout_s
        self._in_flight: dict[uuid.UUID, _InFlight] = {}
        self._wake = asyncio.Event()
        self.acked_batches = 0
        self.resent_batches = 0
        self.last_ack_ms: int | None = None  # the wall clock at the last `committed` ack (telemetry)

    def wake(self) -> None:
        self._wake.set()

    async def backlog(self) -> Backlog:
        def read() -> Backlog:
            with self._store.begin() as conn:
                return outbox.backlog(conn, self._clock)

        return await asyncio.to_thread(read)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._acks(), name="sync acks")
            group.create_task(self._send(), name="sync send")

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._link.wait_connected()
            # (Re)connected: whatever was in flight may never have arrived; send it all again, in order.
            self._in_flight = {
                b.id: _InFlight(b, float("-inf")) for b in await asyncio.to_thread(self._unacknowledged)
            }
            try:
                while self._link.connected:
                    now = loop.time()
                    for entry in list(self._in_flight.values()):
                        if now - entry.sent_at >= self._ack_timeout_s:
                            if entry.sent_at != float("-inf"):
                                self.resent_batches += 1
                            await self._publish(entry.batch)
                            entry.sent_at = loop.time()
                    while len(self._in_flight) < self._max_in_flight:
                        batch = await asyncio.to_thread(self._take)
                        if batch is None:
                            break
                        self._in_flight[batch.id] = _InFlight(batch, loop.time())
                        await self._publish(batch)
                    self._wake.clear()
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as the
                    # wait completes, and the task then never stops.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(IDLE_POLL_S):
                            await self._wake.wait()
            except Exception as err:  # the link dropped mid-publish: the batch stays in the outbox
                log.warning("sending stopped: %s", err)
                await asyncio.sleep(0.1)

    async def _publish(self, batch: Batch) -> None:
        payload = encode_batch(self._robot, batch.id, self._clock.wall_ms(), batch.events, self._key)
        await self._link.publish("batch", payload)

    async def _acks(self) -> None:
        async for payload in self._link.messages("ack"):
            try:
                ack = parse_ack(payload)
            except AckError as err:
                log.warning("ignored a bad ack: %s", err)
                continue
            done = await asyncio.to_thread(self._settle, ack)
            self._in_flight.pop(ack.batch, None)
            if done:
                self.acked_batches += 1
                self.last_ack_ms = self._clock.wall_ms()
            self._wake.set()

    def _take(self) -> Batch | None:
        with self._store.begin() as conn:
            return outbox.take_batch(conn, self._batch_events)

    def _unacknowledged(self) -> list[Batch]:
        with self._store.begin() as conn:
            return outbox.unacknowledged(conn)

    def _settle(self, ack: Ack) -> int:
        with self._store.begin() as conn:
            if ack.committed:
                return outbox.acknowledge(conn, ack.batch)
            moved = outbox.reject(conn, ack.batch, ack.reason)
        log.error(
            "batch %s dead-lettered by the cloud (%d events set aside): %s", ack.batch, moved, ack.reason
        )
        return moved
