"""Down-sync on the robot: ask the cloud for what changed after its cursors, apply what comes, in order.

On every connect the robot publishes `up/sync` with its cursor per scope and an id; the cloud answers on
`down/changes`, ends its reply with `answered` and the id, and then pushes new changes while the robot stays
online (docs/sync.md, "Down-sync"). A request the broker dropped (nobody subscribed: the cloud's down-sync was
not up) gets no answer, so the robot asks again whenever `down/changes` has been silent for a wait that starts
at `ASK_FIRST_WAIT_S` and doubles up to `ASK_MAX_WAIT_S` (with jitter), until an answer to one of this
round's requests comes. It asks again, too, when a restarted cloud down-sync says `ask`. A message that does
not follow on from the robot's cursor (one was lost: the robot was away, or restarted) is set aside and the
robot asks again, at most once per `ASK_AGAIN_S`. A message that does not decode is logged and dropped; it
never stops the robot.

Faces (docs/sync.md, "Faces"): face embeddings are sealed on arrival by the `faces` sink the agent gives
(robot_agent/faces/arrivals.py; without one they are dropped, with one warning). After a message that
touches tickets or faces, and every `PRUNE_EVERY_S` while running, the faces of passengers with no ticket
left are removed; after any face left, the write-ahead log is emptied of their pages, and whenever faces came
or went `faces_changed` (the matcher's refresh) is called, from the worker thread, after the commit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, Protocol

from sqlalchemy import Connection, Engine

from models.sync_changes import Answered, AskAgain, Changes, ChangesRefused, decode_changes, encode_request
from robot_agent.faces.arrivals import prune_ended
from robot_agent.faces.key import CREATE_HINT
from robot_agent.faces.records import forget_deleted
from robot_agent.store import replica
from robot_agent.sync.sender import Link

log = logging.getLogger(__name__)

ASK_AGAIN_S: Final = 1.0
# Asking again when no answer comes: after 2 s of silence on `down/changes`, then 4, 8, 16, 30, 30, ... s,
# each drawn from the upper half of its span so that a fleet that reconnected together spreads out. The cap
# is the bound: a robot holds the cloud's data at most ASK_MAX_WAIT_S after the cloud's down-sync is up, plus
# the time the answer takes.
ASK_FIRST_WAIT_S: Final = 2.0
ASK_MAX_WAIT_S: Final = 30.0
# Tokens expire with time, not with a message: the faces of passengers whose last ticket ended go within
# this long (and at start).
PRUNE_EVERY_S: Final = 3600.0
_TICKETS_OR_FACES: Final = frozenset({"tickets", "ticket_tokens", "ticket_revocations", replica.SEALED})


class DownLink(Link, Protocol):
    async def wait_disconnected(self) -> None: ...


class DownSync:
    """Keeps the robot's copies of the cloud's data current; `run()` until cancelled."""

    def __init__(self, link: DownLink, store: Engine, *, faces: replica.FaceSink | None = None) -> None:
        self._link = link
        self._store = store
        self._faces = faces
        self._dropped_said = False
        # Called (from a worker thread, after the commit) when faces came or went: the matcher's refresh.
        self.faces_changed: Callable[[], None] | None = None
        # Called after the commit (from the worker thread) with the tasks of this robot's sales that came
        # (their rows as the cloud sent them): the agent shows each as a live "order" event, with the stock
        # conflicts its sale met (robot_agent/selling.py).
        self.tasks_changed: Callable[[list[dict[str, Any]]], None] | None = None
        self.faces_added = 0
        self.faces_deleted = 0
        self._snapshot: tuple[str, str, int] | None = None  # (scope, snapshot id, last part applied)
        self._asked_at = float("-inf")
        self._heard_at = float("-inf")  # the last `down/changes` message of any kind
        self._requests: set[str] = set()  # the ids asked in this round of asking
        self._answered = asyncio.Event()  # an answer to one of them came
        self._ask_wanted = asyncio.Event()  # a gap: ask again (and keep asking until answered)
        self.requests = 0
        self.answers = 0
        self.applied_changes = 0
        self.applied_ms: dict[str, int] = {}  # per scope, the wall clock when a message of it last applied
        self.messages = 0
        self.refused = 0
        self.changed = asyncio.Event()  # set after every message applied (tests and telemetry wait on it)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._ask_on_connect(), name="down-sync requests")
            group.create_task(self._receive(), name="down-sync changes")
            group.create_task(self._prune_now_and_then(), name="down-sync face pruning")

    async def _prune_now_and_then(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.prune)
            except Exception as err:  # a busy or broken database: said, and tried again next time
                log.error("faces of ended tickets not pruned: %s", err)
            await asyncio.sleep(PRUNE_EVERY_S)

    def prune(self) -> int:
        """Remove the faces of passengers with no ticket left (blocking; run off the loop); how many went."""
        tally = replica.FaceTally()
        with self._store.begin() as conn:
            tally.deleted = prune_ended(conn, dt.datetime.now(dt.UTC))
        self._after_faces(tally)
        return tally.deleted

    async def _ask_on_connect(self) -> None:
        while True:
            await self._link.wait_connected()
            self._ask_wanted.set()
            while self._link.connected:
                if await self._until(self._ask_wanted, None):
                    self._ask_wanted.clear()
                    await self._ask_until_answered()

    async def _ask_until_answered(self) -> None:
        wait_s = ASK_FIRST_WAIT_S
        # Only an answer to a request of this round counts: one to an earlier request (of an earlier
        # connection, say) does not mean the cloud has this one.
        self._requests.clear()
        self._answered.clear()
        while self._link.connected:
            await self.ask()
            while True:  # silence is counted from the request or the last message, whichever is later
                quiet_s = wait_s * random.uniform(0.5, 1.0)
                left_s = max(self._asked_at, self._heard_at) + quiet_s - time.monotonic()
                if left_s <= 0 or not self._link.connected:
                    break
                if await self._until(self._answered, left_s):
                    return
            if self._link.connected:
                log.info("down-sync had no answer within %.1f s: asking again", quiet_s)
            wait_s = min(2 * wait_s, ASK_MAX_WAIT_S)

    async def _until(self, event: asyncio.Event, timeout_s: float | None) -> bool:
        """Wait for `event`, at most `timeout_s`; give up early if the link drops. Whether it was set."""
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._link.wait_disconnected())]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return event.is_set()

    async def ask(self) -> None:
        """Publish `up/sync` with the robot's cursors and a new request id (now; the rate limit is for gaps
        only)."""
        self._asked_at = time.monotonic()
        self._snapshot = None  # whatever snapshot was coming, the answer brings a new one
        cursors = await asyncio.to_thread(self._cursors)
        request = uuid.uuid4().hex[:16]
        self._requests.add(request)
        try:
            await self._link.publish("sync", encode_request(cursors, request))
        except Exception as err:  # the link dropped: the next connect asks again
            log.warning("down-sync request not sent: %s", err)
            return
        self.requests += 1
        log.info(
            "down-sync asked for changes after %s request=%s", cursors or "nothing (first sync)", request
        )

    async def _receive(self) -> None:
        async for payload in self._link.messages("changes"):
            try:
                message = decode_changes(payload)
            except ChangesRefused as err:
                self.refused += 1
                log.warning("down-sync message refused: %s", err)
                continue
            self._heard_at = time.monotonic()
            if isinstance(message, Answered):
                if message.request in self._requests:
                    self.answers += 1
                    self._answered.set()
                    log.info("down-sync answered request=%s", message.request)
                continue
            if isinstance(message, AskAgain):  # the cloud's down-sync restarted and does not know this robot
                log.info("down-sync asked by the cloud to ask again")
                self._ask_wanted.set()
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
                    self._asked_at = time.monotonic()
                    self._ask_wanted.set()
                continue
            self.applied_changes += applied
            self.applied_ms[message.scope] = int(time.time() * 1000)
            self.changed.set()
            self.changed.clear()

    def _after_faces(self, tally: replica.FaceTally) -> None:
        """After a commit: empty the write-ahead log of deleted faces' pages, say once that faces were
        dropped, tell the matcher."""
        if tally.dropped and not self._dropped_said:
            self._dropped_said = True
            log.warning(
                "down-sync dropped %d face embeddings: this robot has no face key to seal them (%s); "
                "faces that come later are dropped too, without another word",
                tally.dropped,
                CREATE_HINT,
            )
        if not tally.changed:
            return
        self.faces_added += tally.added
        self.faces_deleted += tally.deleted
        if tally.deleted:
            forget_deleted(self._store)
        if self.faces_changed is not None:
            try:
                self.faces_changed()
            except Exception as err:  # the matcher's trouble is its own; down-sync carries on
                log.error("faces changed, but telling the matcher failed: %s", err)

    def _after_tasks(self, message: Changes, cursor: int) -> None:
        tasks = [
            c.value
            for c in message.changes
            if c.table == "tasks" and c.value is not None and c.change_id > cursor
        ]
        if tasks and self.tasks_changed is not None:
            try:
                self.tasks_changed(tasks)
            except Exception as err:  # the listener's trouble is its own; down-sync carries on
                log.error("tasks came, but telling the agent failed: %s", err)

    def _cursors(self) -> dict[str, int]:
        with self._store.connect() as conn:
            return replica.cursors(conn)

    def _apply(self, message: Changes) -> int | None:
        tally = replica.FaceTally()
        with self._store.begin() as conn:
            # A log's changes at or before the cursor were applied before: their tasks are not news.
            cursor = replica.cursors(conn).get(message.scope, 0) if message.kind == "log" else -1
            applied = self._apply_in(conn, message, tally)
        self._after_faces(tally)  # committed
        if applied is not None:
            self._after_tasks(message, cursor)
        if applied is None or message.kind == "log":
            return applied
        self._snapshot = None if message.last else (message.scope, message.snapshot, message.part)
        if message.last:
            log.info("down-sync snapshot of %s applied, cursor %d", message.scope, message.upto)
        return applied

    def _apply_in(self, conn: Connection, message: Changes, tally: replica.FaceTally) -> int | None:
        if message.kind == "log":
            applied = replica.apply_log(conn, message, faces=self._faces, tally=tally)
        else:
            expected = (message.scope, message.snapshot, message.part - 1)
            if message.part != 0 and self._snapshot != expected:
                return None  # a part of a snapshot whose beginning this robot did not apply
            applied = replica.apply_snapshot_part(conn, message, faces=self._faces, tally=tally)
        if applied is not None and (
            (message.kind == "snapshot" and message.last)
            or any(c.table in _TICKETS_OR_FACES for c in message.changes)
        ):
            tally.deleted += prune_ended(conn, dt.datetime.now(dt.UTC))
        return applied
