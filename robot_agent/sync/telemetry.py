"""The robot's telemetry: how its sync stands, logged and published on `up/telemetry` every few seconds.

Telemetry goes out at QoS 0 and only while the link is up (docs/sync.md, "Topics"): a report that cannot be
sent is worth nothing once the next one exists, so none is queued. One is sent at once on every (re)connect,
so the fleet sees a robot's backlog as soon as it is back. The reports carry counts and times only: no event
data, no card UID, no embedding.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from robot_agent.clock import Clock
from robot_agent.errors import RobotAgentError
from robot_agent.store import outbox, replica
from robot_agent.store.outbox import Backlog
from robot_agent.store.tables import OutboxRow

log = logging.getLogger(__name__)

INTERVAL_S: Final = 10.0
_OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]


class TelemetryLink(Protocol):
    """What telemetry needs of the robot's link."""

    @property
    def connected(self) -> bool: ...

    async def wait_connected(self) -> None: ...

    def publish_volatile(self, topic_suffix: str, payload: bytes) -> None:
        """Publish under `up/` at QoS 0, without waiting; raise LinkError if it cannot go out now."""
        ...


class SenderCounters(Protocol):
    """The sender's counters since the agent started (robot_agent.sync.sender.Sender)."""

    acked_batches: int
    resent_batches: int
    last_ack_ms: int | None


class DownSyncCounters(Protocol):
    """Down-sync's counters since the agent started (robot_agent.sync.downsync.DownSync)."""

    applied_changes: int
    refused: int


@dataclass(frozen=True)
class SyncReport:
    """One telemetry report. `backlog.oldest_age_ms` is the age of the oldest event the cloud has not
    acknowledged; `batches_in_flight` counts batches sent and not acknowledged; `last_ack_ms` is the robot's
    wall clock when the last `down/ack` arrived since the agent started (None: none yet)."""

    online: bool
    backlog: Backlog
    batches_in_flight: int
    acked_batches: int
    resent_batches: int
    last_ack_ms: int | None
    uptime_s: float
    cursors: dict[str, int] = field(default_factory=dict)  # down-sync: the newest change applied per scope
    applied_changes: int = 0
    refused_changes: int = 0
    tickets: dict[str, Any] | None = None  # the ticket scanner's counters and camera (None: not scanning)
    # The robot's status (RobotStatus): "parts" (each one's health), "mcu", "estop"; empty: not given.
    health: dict[str, Any] = field(default_factory=dict)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def telemetry_payload(report: SyncReport, now_ms: int) -> bytes:
    """The JSON body of `up/telemetry`."""
    return json.dumps(
        {
            "at": _iso(now_ms),
            "link": "online" if report.online else "offline",
            "backlog": report.backlog.events,
            "oldest_age_ms": report.backlog.oldest_age_ms,
            "in_flight_events": report.backlog.in_flight,
            "batches_in_flight": report.batches_in_flight,
            "acked_batches": report.acked_batches,
            "resent_batches": report.resent_batches,
            "last_ack_at": None if report.last_ack_ms is None else _iso(report.last_ack_ms),
            "uptime_s": round(report.uptime_s, 1),
            "down": {
                "cursors": report.cursors,
                "applied_changes": report.applied_changes,
                "refused_messages": report.refused_changes,
            },
            "tickets": report.tickets,
            **report.health,
        },
        separators=(",", ":"),
    ).encode()


class Telemetry:
    """Reports every `interval_s` seconds and on every connect; `run()` until cancelled."""

    def __init__(
        self,
        robot: uuid.UUID,
        link: TelemetryLink,
        store: Engine,
        sender: SenderCounters,
        downsync: DownSyncCounters,
        clock: Clock,
        *,
        interval_s: float = INTERVAL_S,
        tickets: Callable[[], dict[str, Any]] | None = None,
        health: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self._robot = robot
        self._link = link
        self._store = store
        self._sender = sender
        self._downsync = downsync
        self._clock = clock
        self._interval_s = interval_s
        self._tickets = tickets
        self._health = health
        self._started = time.monotonic()
        self.sent = 0

    async def run(self) -> None:
        while True:
            await self._report()
            if self._link.connected:
                await asyncio.sleep(self._interval_s)
            else:
                # Offline: report again after the interval, or at once when the link comes back.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval_s):
                        await self._link.wait_connected()

    async def report(self) -> SyncReport:
        """How sync stands now (reads the outbox in a thread)."""

        def read() -> tuple[Backlog, int, dict[str, int]]:
            with self._store.begin() as conn:
                batches = conn.execute(select(func.count(func.distinct(_OUTBOX.c.batch)))).scalar_one()
                return outbox.backlog(conn, self._clock), int(batches), replica.cursors(conn)

        backlog, batches, cursors = await asyncio.to_thread(read)
        return SyncReport(
            online=self._link.connected,
            backlog=backlog,
            batches_in_flight=batches,
            acked_batches=self._sender.acked_batches,
            resent_batches=self._sender.resent_batches,
            last_ack_ms=self._sender.last_ack_ms,
            uptime_s=time.monotonic() - self._started,
            cursors=cursors,
            applied_changes=self._downsync.applied_changes,
            refused_changes=self._downsync.refused,
            tickets=self._tickets() if self._tickets is not None else None,
        )

    async def _report(self) -> None:
        try:
            report = await self.report()
        except SQLAlchemyError as err:
            # The outbox is busy or broken; sync reports its own trouble. Telemetry tries again next time.
            log.warning("robot=%s telemetry: cannot read the outbox: %s", self._robot, err.__class__.__name__)
            return
        if self._health is not None:
            # Read here, not in report(): the robot's status reads report() as its "sync" source.
            report = dataclasses.replace(report, health=await self._health())
        troubled = sorted(
            name for name, part in report.health.get("parts", {}).items() if part["state"] == "failed"
        )
        log.info(
            "robot=%s link=%s backlog=%d oldest_age_ms=%s batches_in_flight=%d acked_batches=%d "
            "resent_batches=%d failed_parts=%s",
            self._robot,
            "online" if report.online else "offline",
            report.backlog.events,
            report.backlog.oldest_age_ms,
            report.batches_in_flight,
            report.acked_batches,
            report.resent_batches,
            ",".join(troubled) or "-",
        )
        if not report.online:
            return
        try:
            self._link.publish_volatile("telemetry", telemetry_payload(report, self._clock.wall_ms()))
        except RobotAgentError as err:
            log.debug("robot=%s telemetry not sent: %s", self._robot, err)
            return
        self.sent += 1
