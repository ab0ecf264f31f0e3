"""The robot's live events: what happens, as it happens, for whoever is watching (the local API's stream, the
engineers' UI, tests).

Anything may `publish(kind, data)`, from any thread: card taps (never the UID), ticket checks, purchases,
faults, parts' health, the e-stop, engineers' actions, log lines, what the robot says. Each event gets a
sequence number and a time. Watchers `subscribe()` on the event loop and read at their own pace: each has a
bounded queue, and a watcher that falls behind loses the oldest events, then reads one `dropped` event saying
how many, so a slow UI never holds up the robot or grows its memory. The last `history` events are kept, so
a watcher that connects late (or reconnects with the last seq it saw) starts with what it missed.

Nothing is persisted here: the outbox is the robot's record; this is only what is happening now. Data must be
JSON-ready and free of card UIDs, embeddings and secrets (the publishers' duty; the API sends it as is).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

QUEUE: Final = 1_000  # events a watcher may fall behind by before the oldest are dropped
HISTORY: Final = 200


@dataclass(frozen=True, slots=True)
class LiveEvent:
    seq: int
    at: dt.datetime
    kind: str
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at.isoformat(), "kind": self.kind, "data": self.data}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Subscription:
    """One watcher's queue of events; iterate it with `async for`. Close it (or leave the `async with`)."""

    def __init__(
        self, events: LiveEvents, kinds: frozenset[str] | None, loop: asyncio.AbstractEventLoop, size: int
    ) -> None:
        self._events = events
        self._kinds = kinds
        self._loop = loop
        self._queue: collections.deque[LiveEvent] = collections.deque()
        self._size = size
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0  # events lost to falling behind, in all
        self._unreported = 0  # of those, not yet told in a `dropped` event

    def wants(self, event: LiveEvent) -> bool:
        return self._kinds is None or event.kind in self._kinds

    def _put(self, event: LiveEvent) -> None:  # on the loop's thread
        if self._closed:
            return
        if len(self._queue) >= self._size:
            self._queue.popleft()
            self.dropped += 1
            self._unreported += 1
        self._queue.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._events._unsubscribe(self)
        self._ready.set()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[LiveEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[LiveEvent]:
        while not self._closed:
            if self._unreported:
                count, self._unreported = self._unreported, 0
                yield LiveEvent(0, _now(), "dropped", {"count": count})
                continue
            if self._queue:
                yield self._queue.popleft()
                continue
            self._ready.clear()
            await self._ready.wait()


class LiveEvents:
    """See the module. `now` is injectable for tests."""

    def __init__(
        self, *, history: int = HISTORY, queue: int = QUEUE, now: Callable[[], dt.datetime] = _now
    ) -> None:
        self._now = now
        self._queue_size = queue
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._recent: collections.deque[LiveEvent] = collections.deque(maxlen=history)
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def publish(self, kind: str, data: dict[str, Any] | None = None) -> LiveEvent:
        """Send an event to every watcher (any thread; never blocks)."""
        with self._lock:
            event = LiveEvent(next(self._seq), self._now(), kind, dict(data or {}))
            self._recent.append(event)
            self.published += 1
            subscriptions = [s for s in self._subscriptions if s.wants(event)]
        for subscription in subscriptions:
            loop = subscription._loop
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                subscription._put(event)
            else:
                try:
                    loop.call_soon_threadsafe(subscription._put, event)
                except RuntimeError:  # that loop is closed: its watcher is gone with it
                    pass
        return event

    def subscribe(self, kinds: Iterable[str] | None = None, *, after: int | None = None) -> Subscription:
        """A new watcher of the events of `kinds` (all if None), on the running loop. `after`: first the kept
        events with a larger seq (0: all kept), so a reconnecting watcher misses nothing still kept."""
        loop = asyncio.get_running_loop()
        subscription = Subscription(
            self, frozenset(kinds) if kinds is not None else None, loop, self._queue_size
        )
        with self._lock:
            self._subscriptions.append(subscription)
            backlog = [e for e in self._recent if after is not None and e.seq > after]
        for event in backlog:
            if subscription.wants(event):
                subscription._put(event)
        return subscription

    def recent(self, limit: int = HISTORY) -> list[LiveEvent]:
        """The newest kept events, oldest first."""
        with self._lock:
            return list(self._recent)[-limit:] if limit > 0 else []

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
