"""The robot's sender: drains the outbox in signed batches and deletes them on the cloud's ack (docs/sync.md).

It takes the oldest events as a batch, signs it (`models.sync_batch`), publishes it at QoS 1 and keeps it in
flight until `down/ack` says `committed` (then its rows are deleted) or `dead_letter` (then they move aside
with the reason, so one bad event cannot block the rest). Every batch in flight when the link comes back is
published again with the same id and events; the cloud skips events it has applied, so sending again is
always safe. SQLite work runs in a thread, off the loop.

A batch without an ack within the ack timeout (`AckTimeout`: adapted to the acks' round trips, 1 to 10 s)
means ingest may be away: a broker that restarted loses ingest's shared subscription, and until ingest has
subscribed again the broker drops the robot's batches. The sender then probes: it sends only the oldest
batch again, at growing intervals up to `PROBE_MAX_S`, and nothing new. The first ack that comes proves
ingest is back, and every batch still in flight is sent again at once, instead of each waiting out its own
timeout (docs/sync.md, "The robot's sender").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from models.sync_ack import AckRefused, BatchAck, decode_ack
from models.sync_batch import encode_batch
from robot_agent.clock import Clock
from robot_agent.errors import RobotAgentError
from robot_agent.store import outbox
from robot_agent.store.outbox import Backlog, Batch
from robot_agent.sync.ack_timeout import AckTimeout

log = logging.getLogger(__name__)

MAX_IN_FLIGHT: Final = 8
ACK_TIMEOUT_S: Final = 10.0  # the longest ack timeout (the shortest is 1 s; between, the round trips say)
# While probing (an ack timed out): the longest interval between two sends of the oldest batch, which bounds
# how long the robot waits after ingest is back. One batch every 4 s is a fifth of the traffic of resending
# a full window every 10 s.
PROBE_MAX_S: Final = 4.0
IDLE_POLL_S: Final = 0.5
_NOW: Final = float("-inf")  # `sent_at` of a batch to send at once


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
    sent_at: float  # loop time of its last send on this connection; _NOW: send it at once
    sends: int = 0  # on this connection
    ambiguous: bool = False  # sent on an earlier connection too: its ack says nothing of this round trip


class AckError(RobotAgentError, ValueError):
    """A `down/ack` message that is not one (the sender logs it and carries on)."""


def parse_ack(payload: bytes) -> BatchAck:
    """The ack in a `down/ack` payload; raises `AckError`."""
    try:
        return decode_ack(payload)
    except AckRefused as err:
        raise AckError(str(err)) from err


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
        self._timeout = AckTimeout(
            initial_s=min(ack_timeout_s, 3.0), min_s=min(ack_timeout_s, 1.0), max_s=ack_timeout_s
        )
        self._probe: uuid.UUID | None = None  # the batch being probed with (oldest in flight), if any
        self._probe_wait_s = 0.0
        self._in_flight: dict[uuid.UUID, _InFlight] = {}
        self._wake = asyncio.Event()
        self.acked_batches = 0
        self.resent_batches = 0
        self.last_ack_ms: int | None = None  # the wall clock at the last `committed` ack (telemetry)

    def wake(self) -> None:
        self._wake.set()

    @property
    def ack_timeout_s(self) -> float:
        """The current ack timeout, adapted to the acks' round trips."""
        return self._timeout.value

    @property
    def probing(self) -> bool:
        """Whether an ack timed out and no ack has come since (ingest may be away)."""
        return self._probe is not None

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
                b.id: _InFlight(b, _NOW, ambiguous=True)
                for b in await asyncio.to_thread(self._unacknowledged)
            }
            self._probe = None
            try:
                while self._link.connected:
                    for entry in self._due(loop.time()):
                        if entry.sends:
                            self.resent_batches += 1
                        await self._publish(entry.batch)
                        entry.sent_at, entry.sends = loop.time(), entry.sends + 1
                    while self._probe is None and len(self._in_flight) < self._max_in_flight:
                        batch = await asyncio.to_thread(self._take)
                        if batch is None:
                            break
                        self._in_flight[batch.id] = _InFlight(batch, loop.time(), sends=1)
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

    def _due(self, now: float) -> list[_InFlight]:
        """The batches to send (again) now, oldest first; starts probing when an ack is late."""
        if self._probe is not None:
            probe = self._in_flight.get(self._probe)
            if probe is None:  # settled meanwhile: `_acks` ends probing too, this is only a safeguard
                self._probe = None
                return []
            if now - probe.sent_at < self._probe_wait_s:
                return []
            self._probe_wait_s = min(2 * self._probe_wait_s, PROBE_MAX_S)
            return [probe]
        due = [e for e in self._in_flight.values() if e.sent_at == _NOW]
        if due:
            return due
        timeout_s = self._timeout.value
        late = [e for e in self._in_flight.values() if now - e.sent_at >= timeout_s]
        if not late:
            return []
        # No ack in time: ingest may be away, and the broker dropping every batch. Send only the oldest until
        # an ack says ingest is there again (`_acks`).
        self._timeout.backoff()
        self._probe, self._probe_wait_s = late[0].batch.id, min(self._timeout.value, PROBE_MAX_S)
        log.info(
            "no ack within %.1f s for batch %s: probing with it alone until ingest answers",
            timeout_s,
            late[0].batch.id,
        )
        return [late[0]]

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
            arrived = asyncio.get_running_loop().time()
            done = await asyncio.to_thread(self._settle, ack)
            entry = self._in_flight.pop(ack.batch, None)
            if entry is not None and entry.sends == 1 and not entry.ambiguous:
                self._timeout.sample(arrived - entry.sent_at)
            if self._probe is not None:
                # Ingest answered: it is back. What is still in flight was most likely dropped while it was
                # away; send it all again now rather than wait out a timeout for each.
                log.info("ack after probing: sending the %d batches in flight again", len(self._in_flight))
                self._probe = None
                self._timeout.settled()
                for waiting in self._in_flight.values():
                    waiting.sent_at = _NOW
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

    def _settle(self, ack: BatchAck) -> int:
        with self._store.begin() as conn:
            if ack.committed:
                return outbox.acknowledge(conn, ack.batch)
            moved = outbox.reject(conn, ack.batch, ack.reason)
        log.error(
            "batch %s dead-lettered by the cloud (%d events set aside): %s", ack.batch, moved, ack.reason
        )
        return moved
