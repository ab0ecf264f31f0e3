"""The robot's one status object: how each part of `robot-agent run` is, and what the robot knows of itself.

Telemetry, the local control API and the engineers' UI all read `RobotStatus.snapshot()`, so they never
disagree. The supervisor reports each part's health (`part_changed`), the hardware wiring the MCU link and
the e-stop (`mcu_changed`, `estop_changed`); whatever is measured elsewhere (sync backlog and last ack, camera
fps, enrolled faces, the assignment) is read at snapshot time from the sources registered with `add_source`,
so nothing here goes stale. Every change is also handed to the listeners (`listen`): the live event stream
turns them into events.

Nothing here does I/O, and nothing here is ever a card UID, an embedding or a secret: sources must return
counts, states and times only. Thread-safe: parts report from worker threads too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)

Source = Callable[[], dict[str, Any] | Awaitable[dict[str, Any] | None] | None]
Listener = Callable[[str, dict[str, Any]], None]


class PartState(StrEnum):
    """Where a supervised part stands."""

    STARTING = "starting"  # started, not yet known to work (a part may say `running` itself)
    RUNNING = "running"
    FAILED = "failed"  # raised; the supervisor restarts it after a backoff
    STOPPED = "stopped"  # ended on its own (a file camera played out) or at shutdown
    OFF = "off"  # not configured on this robot


@dataclass(frozen=True, slots=True)
class PartHealth:
    state: PartState
    since: dt.datetime
    restarts: int = 0
    last_error: str | None = None  # one line, for people: never a secret (the part's own message)

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "since": self.since.isoformat(),
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RobotStatus:
    """See the module. `now` is injectable for tests."""

    def __init__(self, robot_id: uuid.UUID, *, now: Callable[[], dt.datetime] = _now) -> None:
        self.robot_id = robot_id
        self._now = now
        self._lock = threading.Lock()
        self._started = now()
        self._parts: dict[str, PartHealth] = {}
        self._mcu: dict[str, Any] = {"linked": False, "since": self._started.isoformat(), "firmware": None}
        self._estop: dict[str, Any] = {"pressed": False, "since": self._started.isoformat()}
        self._sources: dict[str, Source] = {}
        self._listeners: list[Listener] = []

    # -- what parts report -----------------------------------------------------------------------------

    def part_changed(self, name: str, state: PartState, error: str | None = None) -> PartHealth:
        """Record part `name`'s new state; a FAILED counts a restart-to-come, and keeps `error`."""
        with self._lock:
            old = self._parts.get(name)
            restarts = (old.restarts if old else 0) + (state is PartState.FAILED)
            last_error = error if error is not None else (old.last_error if old else None)
            health = PartHealth(state, self._now(), restarts, last_error)
            self._parts[name] = health
        self._tell("part", {"part": name, **health.as_json()})
        return health

    def mcu_changed(self, linked: bool, firmware: str | None = None) -> None:
        with self._lock:
            if self._mcu["linked"] == linked and (firmware is None or self._mcu["firmware"] == firmware):
                return
            self._mcu = {
                "linked": linked,
                "since": self._now().isoformat(),
                "firmware": firmware if firmware is not None else self._mcu["firmware"],
            }
            event = dict(self._mcu)
        self._tell("mcu", event)

    def estop_changed(self, pressed: bool) -> None:
        with self._lock:
            if self._estop["pressed"] == pressed:
                return
            self._estop = {"pressed": pressed, "since": self._now().isoformat()}
            event = dict(self._estop)
        self._tell("estop", event)

    @property
    def estop_pressed(self) -> bool:
        with self._lock:
            return bool(self._estop["pressed"])

    @property
    def mcu_linked(self) -> bool:
        with self._lock:
            return bool(self._mcu["linked"])

    def parts(self) -> dict[str, PartHealth]:
        with self._lock:
            return dict(self._parts)

    # -- what is read when asked -----------------------------------------------------------------------

    def add_source(self, name: str, source: Source) -> None:
        """Read `source()` (sync, or a coroutine function) into the snapshot under `name`; None leaves it
        out. A source that raises shows as {"error": ...} and is logged once per snapshot at DEBUG."""
        with self._lock:
            self._sources[name] = source

    def listen(self, listener: Listener) -> None:
        """Call `listener(kind, data)` on every change ("part", "mcu", "estop"), from the reporting thread."""
        with self._lock:
            self._listeners.append(listener)

    async def snapshot(self) -> dict[str, Any]:
        """Everything, JSON-ready: robot, uptime, parts, mcu, estop, then each source's dict by name."""
        with self._lock:
            now = self._now()
            body: dict[str, Any] = {
                "robot": str(self.robot_id),
                "at": now.isoformat(),
                "uptime_s": round((now - self._started).total_seconds(), 1),
                "parts": {name: health.as_json() for name, health in sorted(self._parts.items())},
                "mcu": dict(self._mcu),
                "estop": dict(self._estop),
            }
            sources = list(self._sources.items())
        for name, source in sources:
            try:
                value = source()
                if inspect.isawaitable(value):
                    value = await value
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a source's trouble must not hide the rest of the status
                log.debug("status source %s failed: %s", name, err)
                body[name] = {"error": f"{err.__class__.__name__}: {err}"[:200]}
                continue
            if value is not None:
                body[name] = value
        return body

    def _tell(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(kind, data)
            except Exception:  # a listener's bug must not fail the part that reported
                log.exception("status listener failed on %s", kind)
