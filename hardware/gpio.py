"""Host GPIO lines (`DigitalIn`, `DigitalOut`): gpiod on the robot, fakes everywhere else.

`[hardware.gpio] backend = "gpiod"` drives lines of the computer's own GPIO chip through the kernel's
character device (libgpiod 2). The machines that run the tests have no GPIO chip and cannot simulate one
(no gpio-sim: shared/notes/serial-facts.md), so the gpiod classes are kept to the calls gpiod needs, and
everything with logic in it (which edges wake which waiter) lives in `EdgeWaiters`, shared with the fakes
and tested through them. The fakes keep a history with timestamps from an injectable clock, so a test can
say "the relay was on for 200 ms" without waiting 200 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Final, Literal, get_args

import gpiod
from gpiod.line import Bias, Direction, Value
from gpiod.line import Clock as LineClock
from gpiod.line import Edge as LineEdge

from hardware.clock import Clock
from hardware.devices import Edge, EdgeEvent
from hardware.errors import DeviceUnavailableError

log = logging.getLogger(__name__)

Pull = Literal["as-is", "pull-up", "pull-down", "disabled"]

_EDGES: Final = get_args(Edge)
_BIAS: Final = {
    "as-is": Bias.AS_IS,
    "pull-up": Bias.PULL_UP,
    "pull-down": Bias.PULL_DOWN,
    "disabled": Bias.DISABLED,
}


class EdgeWaiters:
    """The tasks waiting in `wait_edge`, and which of them an edge wakes (all that asked for its kind)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._waiting: list[tuple[Edge, asyncio.Future[EdgeEvent]]] = []
        self._closed = False

    async def wait(self, edge: Edge) -> EdgeEvent:
        if edge not in _EDGES:
            raise ValueError(f"{self._name}: edge must be one of {', '.join(_EDGES)}, got {edge!r}")
        if self._closed:
            raise DeviceUnavailableError(f"{self._name} is closed")
        future: asyncio.Future[EdgeEvent] = asyncio.get_running_loop().create_future()
        entry = (edge, future)
        self._waiting.append(entry)
        try:
            return await future
        finally:
            with contextlib.suppress(ValueError):
                self._waiting.remove(entry)

    def deliver(self, event: EdgeEvent) -> None:
        for wanted, future in self._waiting:
            if wanted in ("both", event.edge) and not future.done():
                future.set_result(event)

    def close(self) -> None:
        self._closed = True
        for _, future in self._waiting:
            if not future.done():
                future.set_exception(
                    DeviceUnavailableError(f"{self._name} was closed while waiting for an edge")
                )


# -- fakes --------------------------------------------------------------------------------------------------


class FakeDigitalIn:
    """An input a test drives with `inject`; a change is an edge: recorded in `history` and delivered."""

    def __init__(
        self, name: str = "fake input", *, value: bool = False, clock: Clock = time.monotonic
    ) -> None:
        self.name = name
        self.history: list[EdgeEvent] = []
        self._value = value
        self._clock = clock
        self._waiters = EdgeWaiters(name)

    @property
    def value(self) -> bool:
        return self._value

    def inject(self, value: bool) -> None:
        """Set the line from outside, as the wired device would; the same value again is no edge."""
        if value == self._value:
            return
        self._value = value
        event = EdgeEvent("rising" if value else "falling", self._clock())
        self.history.append(event)
        self._waiters.deliver(event)

    async def wait_edge(self, edge: Edge = "both") -> EdgeEvent:
        return await self._waiters.wait(edge)

    def close(self) -> None:
        self._waiters.close()


class FakeDigitalOut:
    """An output that records every `set` as `(time, value)` in `history`."""

    def __init__(
        self, name: str = "fake output", *, value: bool = False, clock: Clock = time.monotonic
    ) -> None:
        self.name = name
        self.history: list[tuple[float, bool]] = []
        self._value = value
        self._clock = clock
        self._closed = False

    @property
    def value(self) -> bool:
        return self._value

    async def set(self, value: bool) -> None:
        if self._closed:
            raise DeviceUnavailableError(f"{self.name} is closed")
        self._value = value
        self.history.append((self._clock(), value))

    def close(self) -> None:
        self._closed = True


# -- gpiod --------------------------------------------------------------------------------------------------


def _request(chip: str, line: int, settings: gpiod.LineSettings, consumer: str) -> gpiod.LineRequest:
    try:
        return gpiod.request_lines(chip, consumer=consumer, config={line: settings})
    except (OSError, ValueError) as err:
        raise DeviceUnavailableError(f"GPIO {chip} line {line}: {err}") from err


class GpiodDigitalIn:
    """An input line with edge detection; the kernel timestamps edges (monotonic clock), and the request's
    file descriptor wakes the event loop, so no thread polls. Create it inside the running loop."""

    def __init__(
        self,
        chip: str,
        line: int,
        *,
        active_low: bool = False,
        bias: Pull = "as-is",
        debounce_ms: int = 0,
        consumer: str = "railbot",
    ) -> None:
        self.name = f"GPIO {chip} line {line}"
        self._line = line
        self._waiters = EdgeWaiters(self.name)
        settings = gpiod.LineSettings(
            direction=Direction.INPUT,
            edge_detection=LineEdge.BOTH,
            bias=_BIAS[bias],
            active_low=active_low,
            debounce_period=timedelta(milliseconds=debounce_ms),
            event_clock=LineClock.MONOTONIC,
        )
        self._request = _request(chip, line, settings, consumer)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._request.fd, self._readable)

    @property
    def value(self) -> bool:
        try:
            return self._request.get_value(self._line) is Value.ACTIVE
        except (OSError, gpiod.RequestReleasedError) as err:
            raise DeviceUnavailableError(f"{self.name}: {err}") from err

    async def wait_edge(self, edge: Edge = "both") -> EdgeEvent:
        return await self._waiters.wait(edge)

    def _readable(self) -> None:
        try:
            events = self._request.read_edge_events()
        except OSError as err:
            log.warning("%s: cannot read edge events: %s", self.name, err)
            return
        for event in events:
            rising = event.event_type is gpiod.EdgeEvent.Type.RISING_EDGE
            self._waiters.deliver(EdgeEvent("rising" if rising else "falling", event.timestamp_ns / 1e9))

    def close(self) -> None:
        if self._request:
            self._loop.remove_reader(self._request.fd)
            self._request.release()
        self._waiters.close()


class GpiodDigitalOut:
    """An output line, driven to `value` from the moment it is requested."""

    def __init__(
        self,
        chip: str,
        line: int,
        *,
        value: bool = False,
        active_low: bool = False,
        consumer: str = "railbot",
    ) -> None:
        self.name = f"GPIO {chip} line {line}"
        self._line = line
        self._value = value
        settings = gpiod.LineSettings(
            direction=Direction.OUTPUT, active_low=active_low, output_value=_level(value)
        )
        self._request = _request(chip, line, settings, consumer)

    @property
    def value(self) -> bool:
        return self._value

    async def set(self, value: bool) -> None:
        try:
            self._request.set_value(self._line, _level(value))
        except (OSError, gpiod.RequestReleasedError) as err:
            raise DeviceUnavailableError(f"{self.name}: {err}") from err
        self._value = value

    def close(self) -> None:
        if self._request:
            self._request.release()


def _level(value: bool) -> Value:
    return Value.ACTIVE if value else Value.INACTIVE
