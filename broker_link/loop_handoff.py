"""Calls from a client library's own thread (paho's network loop) handed to the asyncio loop that owns the
client's state: the robot's MQTT link and the cloud's both hand every callback over this way, so that their
state is touched on the event loop's thread only. Pure: no I/O, no paho."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVarTuple

_Ts = TypeVarTuple("_Ts")


class LoopHandoff:
    """Bound once to the running loop (`bind`, in the link's start); `call` may be used from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def bound(self) -> bool:
        return self._loop is not None

    def bind(self, owner: str) -> None:
        """Bind to the running loop; RuntimeError if bound already (`owner` started twice)."""
        if self._loop is not None:
            raise RuntimeError(f"{owner}.start() called twice")
        self._loop = asyncio.get_running_loop()

    def call(self, callback: Callable[[*_Ts], object], *args: *_Ts) -> None:
        """Run `callback(*args)` on the loop soon. Before `bind` there is no loop to tell, and after the loop
        has closed (shutdown) nobody is left to tell: both drop the call, as raising would kill the caller's
        thread (paho's)."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass
