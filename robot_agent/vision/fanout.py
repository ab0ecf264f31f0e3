"""One camera, several readers: each frame handed to every subscriber, newest frame wins for each.

The camera keeps one slot, so two readers of `Camera.next_frame` would take each other's frames: the QR
scanner and the face watcher would each see about half of them, and a slow face frame would still leave
the scanner only what the watcher did not take. `FrameFanout` is the camera's only reader; it puts every
frame into each subscriber's own slot of one, replacing a frame that subscriber has not taken yet (counted
as skipped). A slow subscriber therefore skips frames instead of queueing them, and never delays another:
each reads at its own pace, its work in its own worker thread, the newest frame at most one frame period
old when it looks.

Everything here runs on the event loop (putting a frame into a slot is a reference and an Event), so no lock
is needed; the camera's capture thread stays the camera's business.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from robot_agent.vision.camera import Camera, CameraEnded, Frame

log = logging.getLogger(__name__)


class FrameFeed(Protocol):
    """What a frame reader awaits: the newest frame it has not seen; CameraEnded when none will come."""

    async def next_frame(self) -> Frame: ...


class Subscription:
    """One reader's slot: the newest frame it has not taken yet."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.delivered = 0  # frames put into the slot
        self.skipped = 0  # frames replaced before the reader took them
        self._slot: Frame | None = None
        self._ended = False
        self._ready = asyncio.Event()

    async def next_frame(self) -> Frame:
        """The newest frame not taken yet, waiting for one; CameraEnded once the camera has ended and the
        last frame was taken."""
        while True:
            frame, self._slot = self._slot, None
            if frame is not None:
                return frame
            if self._ended:
                raise CameraEnded(f"the camera's frames for {self.name} have ended")
            self._ready.clear()
            await self._ready.wait()

    def put(self, frame: Frame) -> None:
        self.delivered += 1
        if self._slot is not None:
            self.skipped += 1
        self._slot = frame
        self._ready.set()

    def end(self) -> None:
        self._ended = True
        self._ready.set()


class FrameFanout:
    """Reads `camera` (its only reader) and hands each frame to every subscription; `run()` until the camera
    ends or the task is cancelled, and then ends every subscription."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self._subscriptions: list[Subscription] = []

    def subscribe(self, name: str) -> Subscription:
        """A new reader's slot; subscribe before `run()` starts, or miss the frames before. A reader that
        comes and goes (the local API's enrolment from the camera) unsubscribes when done."""
        subscription = Subscription(name)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop handing frames to `subscription` (its slot is let go)."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        subscription.end()

    async def run(self) -> None:
        try:
            while True:
                try:
                    frame = await self.camera.next_frame()
                except CameraEnded:
                    return
                for subscription in self._subscriptions:
                    subscription.put(frame)
        finally:
            for subscription in self._subscriptions:
                subscription.end()
