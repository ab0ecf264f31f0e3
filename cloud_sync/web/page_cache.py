"""A short-lived cache of rendered list pages, for the read-heavy routes store terminals poll.

A write through this process forgets the store's pages at once; a write through another instance is seen
within `ttl` seconds. Purchases never read from here: balances are checked in the database.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Hashable


class PageCache:
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._max_entries = max_entries
        self._pages: dict[tuple[uuid.UUID, Hashable], tuple[float, bytes]] = {}

    def get(self, owner: uuid.UUID, key: Hashable) -> bytes | None:
        if self.ttl <= 0:
            return None
        hit = self._pages.get((owner, key))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, owner: uuid.UUID, key: Hashable, body: bytes) -> None:
        if self.ttl <= 0:
            return
        if len(self._pages) >= self._max_entries:
            self._pages.clear()
        self._pages[(owner, key)] = (time.monotonic() + self.ttl, body)

    def forget(self, owner: uuid.UUID) -> None:
        """Drop every page of one owner (a store), after it changed."""
        for cached in [k for k in self._pages if k[0] == owner]:
            del self._pages[cached]
