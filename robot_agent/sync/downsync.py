"""Down-sync on the robot: ask the cloud for what changed after its cursors, apply what comes, in order.

On every connect the robot publishes `up/sync` with its cursor per scope; the cloud answers on `down/changes`
and then pushes new changes while the robot stays online (docs/sync.md, "Down-sync"). A message that does not
follow on from the robot's cursor (one was lost: the robot was away, or restarted) is set aside and the robot
asks again, at most once per `ASK_AGAIN_S`. A message that does not decode is logged and dropped; it never
stops the robot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final, Protocol

from sqlalchemy import Engine

from models.sync_changes import Changes, ChangesRefused, decode_changes, encode_request
from robot_agent.store import replica
from robot_agent.sync.sender import Link

log = logging.getLogger(__name__)

ASK_AGAIN_S: Final = 1.0


class DownLink(Link, Protocol):
    async def wait_disconnected(self) -> None: ...


class DownSync:
    """Keeps the robot's copies of the cloud's data current; `run()` until cancelled."""

    def __init__(self, link: DownLink, store: Engine) -> None:
        self._link = link
        self._store = store
        self._snapshot: tuple[str, str, int] | None = None  # (scope, snapshot id, last part applied)
        self._asked_at = float("-inf")
        self.applied_changes = 0
        self.messages = 0
        self.refused = 0
        self.changed = asyncio.Event()  # set after every message applied (tests and telemetry wait on it)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._ask_on_connect(), name="down-sync requests")
            group.create_task(self._receive(), name="down-sync changes")

    async def _ask_on_connect(self) -> None:
        while True:
            await self._link.wait_connected()
            await self.ask()
            await self._link.wait_disconnected()

    async def ask(self) -> None:
        """Publish `up/sync` with the robot's cursors (now; the rate limit is for gaps only)."""
        self._asked_at = time.monotonic()
        self._snapshot = None  # whatever snapshot was coming, the answer brings a new one
        cursors = await asyncio.to_thread(self._cursors)
        try:
            await self._link.publish("sync", encode_request(cursors))
        except Exception as err:  # the link dropped: the next connect asks again
            log.warning("down-sync request not sent: %s", err)
            return
        log.info("down-sync asked for changes after %s", cursors or "nothing (first sync)")

    async def _receive(self) -> None:
        async for payload in self._link.messages("changes"):
            try:
                message = decode_changes(payload)
            except ChangesRefused as err:
                self.refused += 1
                log.warning("down-sync message refused: %s", err)
                continue
            try:
                applied = await asyncio.to_thread(self._apply, message)
            except Exception as err:  # rows this robot's tables cannot take: nothing applied, carry on
                self.refused += 1
                log.error("down-sync message of %s not applied: %s", message.scope, err)
                continue
            self.messages += 1
            if applied is None:
                if time.monotonic() - self._asked_at >= ASK_AGAIN_S:
                    log.info(
                        "down-sync gap in %s (message after %d): asking again", message.scope, message.after
                    )
                    await self.ask()
                continue
            self.applied_changes += applied
            self.changed.set()
            self.changed.clear()

    def _cursors(self) -> dict[str, int]:
        with self._store.connect() as conn:
            return replica.cursors(conn)

    def _apply(self, message: Changes) -> int | None:
        with self._store.begin() as conn:
            if message.kind == "log":
                return replica.apply_log(conn, message)
            expected = (message.scope, message.snapshot, message.part - 1)
            if message.part != 0 and self._snapshot != expected:
                return None  # a part of a snapshot whose beginning this robot did not apply
            applied = replica.apply_snapshot_part(conn, message)
        self._snapshot = None if message.last else (message.scope, message.snapshot, message.part)
        if message.last:
            log.info("down-sync snapshot of %s applied, cursor %d", message.scope, message.upto)
        return applied
