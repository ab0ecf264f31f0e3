"""Keeping the agent's parts running: each part a task, a failure reported and restarted, never contagious.

`robot-agent run` is many parts (sync, telemetry, camera and vision, the hardware's watchers, ...) that must
outlive one another's failures for days with nobody watching. A plain TaskGroup ends every part when one
raises; the supervisor instead catches what a part raises, reports it where people look (RobotStatus: the
part FAILED with a one-line error; a WARNING log line; a LiveEvents "fault" event) and starts the part again
after a backoff: 1 s doubling to 30 s, with jitter so that parts failing together (the broker's host went
away) do not retry in step. A part that ran for a minute before failing was healthy: its backoff starts
again from 1 s, so a rare failure is retried at once however many came before.

A part that returns has finished its work (a file camera played out): it is STOPPED, not restarted.
Cancelling `run()` stops every part (each STOPPED); BaseExceptions that are not Exceptions (KeyboardInterrupt,
SystemExit) are not caught.

Pure asyncio: `sleep`, `clock` and `random` are injectable so that tests drive every transition without time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from robot_agent.live import LiveEvents
from robot_agent.status import PartState, RobotStatus

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S: Final = 1.0
BACKOFF_MAX_S: Final = 30.0
HEALTHY_AFTER_S: Final = 60.0  # a part that ran this long before failing starts its backoff afresh
JITTER: Final = 0.25  # each wait is the backoff times 1 ± JITTER
ERROR_CHARS: Final = 200

Part = Callable[[], Awaitable[None]]


def one_line(error: BaseException) -> str:
    """`Kind: message` on one line, cut to a length a status screen can show."""
    message = " ".join(str(error).split())
    text = f"{error.__class__.__name__}: {message}" if message else error.__class__.__name__
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


@dataclass(frozen=True)
class Backoff:
    """How long to wait before the next restart; pure."""

    initial_s: float = BACKOFF_INITIAL_S
    max_s: float = BACKOFF_MAX_S
    healthy_after_s: float = HEALTHY_AFTER_S
    jitter: float = JITTER

    def next_delay(self, previous_s: float | None, ran_s: float) -> float:
        """The backoff after a failure, before jitter: `previous_s` the last one (None: first failure)."""
        if previous_s is None or ran_s >= self.healthy_after_s:
            return self.initial_s
        return min(previous_s * 2, self.max_s)

    def jittered(self, delay_s: float, draw: float) -> float:
        """`delay_s` spread by ±jitter; `draw` is uniform in [0, 1)."""
        return delay_s * (1 + self.jitter * (2 * draw - 1))


class Supervisor:
    """Runs named parts; see the module. `add()` every part, then `run()` until cancelled."""

    def __init__(
        self,
        status: RobotStatus,
        live: LiveEvents,
        *,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._status = status
        self._live = live
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._draw = draw
        self._parts: dict[str, Part] = {}

    def add(self, name: str, part: Part) -> None:
        """Supervise `part` (called again for each restart) under `name`; before `run()`."""
        if name in self._parts:
            raise ValueError(f"a part named {name!r} is supervised already")
        self._parts[name] = part
        self._status.part_changed(name, PartState.STARTING)

    @property
    def names(self) -> list[str]:
        return list(self._parts)

    async def run(self) -> None:
        """Run every part until each has stopped by itself, or until cancelled."""
        async with asyncio.TaskGroup() as parts:
            for name, part in self._parts.items():
                parts.create_task(self._keep(name, part), name=name)

    async def _keep(self, name: str, part: Part) -> None:
        delay: float | None = None
        while True:
            self._status.part_changed(name, PartState.RUNNING)
            started = self._clock()
            try:
                await part()
            except asyncio.CancelledError:
                self._status.part_changed(name, PartState.STOPPED)
                raise
            except Exception as err:
                error = one_line(err)
                delay = self._backoff.next_delay(delay, self._clock() - started)
                wait_s = self._backoff.jittered(delay, self._draw())
                health = self._status.part_changed(name, PartState.FAILED, error)
                # The traceback at DEBUG only: the one line says what happened, and a part failing every 30 s
                # for a day must not fill the disk.
                log.warning(
                    "part %s failed (%d so far); restarting in %.1f s: %s",
                    name,
                    health.restarts,
                    wait_s,
                    error,
                )
                log.debug("part %s failure", name, exc_info=err)
                self._live.publish(
                    "fault", {"part": name, "error": error, "restarts": health.restarts, "retry_in_s": wait_s}
                )
                try:
                    await self._sleep(wait_s)
                except asyncio.CancelledError:
                    self._status.part_changed(name, PartState.STOPPED)
                    raise
                continue
            self._status.part_changed(name, PartState.STOPPED)
            log.info("part %s finished; not restarted", name)
            return
