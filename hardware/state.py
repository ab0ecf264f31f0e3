"""State every backend keeps the same way: the e-stop latch and the buffer of card taps.

Shared so that the simulation and the MCU backend refuse, announce and buffer identically: a test passing on
the simulation says something about the robot.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Final, Generic, TypeVar

from hardware.devices import CardTap
from hardware.errors import EStopPressedError

log = logging.getLogger(__name__)

T = TypeVar("T")

TAP_BUFFER: Final = 16


class QueueIterator(Generic[T]):
    """An endless async iterator over one queue; holding it keeps a `Broadcast` subscription alive."""

    def __init__(self, queue: asyncio.Queue[T]) -> None:
        self.queue = queue

    def __aiter__(self) -> QueueIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self.queue.get()


class EStopLatch:
    """The e-stop as last known, its changes for any number of listeners, and the refusal of actuators."""

    def __init__(self) -> None:
        self._pressed = False
        # Weak: a listener that drops its iterator unsubscribes without having to say so.
        self._listeners: weakref.WeakSet[asyncio.Queue[bool]] = weakref.WeakSet()

    @property
    def pressed(self) -> bool:
        return self._pressed

    def set(self, pressed: bool, source: str) -> None:
        """Record the e-stop's state as `source` reports it; listeners hear of changes only."""
        if pressed == self._pressed:
            return
        self._pressed = pressed
        if pressed:
            log.warning("e-stop pressed (from %s): actuator commands are refused", source)
        else:
            log.info("e-stop released (from %s)", source)
        for queue in list(self._listeners):
            queue.put_nowait(pressed)

    def changes(self) -> AsyncIterator[bool]:
        """Changes from now on; subscribed at the call, not at the first `anext`."""
        queue: asyncio.Queue[bool] = asyncio.Queue()
        self._listeners.add(queue)
        return QueueIterator(queue)

    def refuse_if_pressed(self, command: str) -> None:
        if self._pressed:
            raise EStopPressedError(command)


class TapBuffer:
    """Card taps waiting for the agent. Bounded: when the agent falls behind, the oldest tap goes."""

    def __init__(self, size: int = TAP_BUFFER) -> None:
        self._queue: asyncio.Queue[CardTap] = asyncio.Queue(size)

    def put(self, tap: CardTap) -> None:
        if self._queue.full():
            old = self._queue.get_nowait()
            log.warning("card tap buffer full: the oldest tap (reader=%d) was dropped", old.reader)
        self._queue.put_nowait(tap)

    def taps(self) -> AsyncIterator[CardTap]:
        return QueueIterator(self._queue)
