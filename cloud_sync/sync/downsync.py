"""Down-sync in the cloud: answers robots' `up/sync` requests from the change log and pushes new changes to
robots that are online (docs/sync.md, "Down-sync").

The change log is read, never kept here: the state is, per online robot, the scopes it may see and how far
each has been pushed. A robot is online from its request until its status says offline (its last will, or
a clean close). New changes are found by polling the log's newest id every `poll_s`, which works whichever
process wrote them. A robot's scopes come from its assignments; when they change (a change in its own scope),
a scope it did not have is sent from its beginning, or as a snapshot if the log was compacted.

Every request is answered from the cursors it carries, so a robot that asks again (its request or the answer
went missing) is sent what it may already have, which it skips: nothing is applied twice. A request with an
id gets, after the changes, an `answered` message repeating the id; a robot that has no answer asks again.
When this service (re)subscribes, the broker hands it every robot's retained status; a robot that is online
and that it has no cursors for is sent `ask`, so a restart of this service while robots stay connected does
not leave them without pushes.

Run one down-sync service per broker: two would each push every change (harmless, as applying is
idempotent, but twice the traffic).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from typing import Final

from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid_utils.compat import uuid7

from cloud_sync.db import changes
from cloud_sync.db.tables import CLOUD_METADATA
from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.mqtt_link import CloudLink
from models.sync_batch import TOPIC_ROOT, robot_in_topic
from models.sync_changes import (
    ALL_SCOPE,
    CHANGES_PER_MESSAGE,
    Answered,
    Changes,
    ChangesRefused,
    chunks,
    encode_answered,
    encode_ask_again,
    encode_changes,
    parse_request,
    robot_scope,
    train_scope,
)

log = logging.getLogger(__name__)

POLL_S: Final = 0.5
# `down/changes` messages read from the log per database round trip while answering (10,000 changes): the
# first reach the robot while the rest are read, instead of after the whole scope has been read.
READ_MESSAGES: Final = 20
# Assignments from yesterday on still count: a night train's robot keeps yesterday's tickets until it arrives.
ASSIGNMENT_GRACE: Final = dt.timedelta(days=1)
_ASSIGNMENTS = CLOUD_METADATA.tables["robot_assignments"]
# Robots' requests, and their statuses (retained: the broker hands every robot's when this subscribes).
SUBSCRIPTIONS: Final = (f"{TOPIC_ROOT}/+/up/sync", f"{TOPIC_ROOT}/+/up/status")


def scopes_for(conn: Connection, robot: uuid.UUID, today: dt.date) -> set[str]:
    """The scopes `robot` may see: everyone's, its own, and those of the trains it is assigned to."""
    trains = conn.execute(
        select(_ASSIGNMENTS.c.train_number)
        .where(_ASSIGNMENTS.c.robot_id == robot, _ASSIGNMENTS.c.train_date >= today - ASSIGNMENT_GRACE)
        .distinct()
    ).scalars()
    return {ALL_SCOPE, robot_scope(robot)} | {train_scope(n) for n in trains}


def messages_for(conn: Connection, scope: str, after: int, limit: int | None = None) -> list[Changes]:
    """What a robot whose cursor in `scope` is `after` must be sent: the log after it, in messages of
    CHANGES_PER_MESSAGE (at most `limit` of them, the rest on the next call), or a snapshot when the log no
    longer reaches back to `after`."""
    if after < changes.floor_of(conn, scope):
        # Read first: a change made after it comes again in the log, harmlessly.
        upto = changes.last_change_id(conn)
        rows = changes.snapshot(conn, scope)
        parts = chunks(rows) or [()]
        snapshot = str(uuid7())
        return [
            Changes(scope, "snapshot", after, upto, part, snapshot, n, n == len(parts) - 1)
            for n, part in enumerate(parts)
        ]
    out: list[Changes] = []
    while limit is None or len(out) < limit:
        found = changes.changes_after(conn, scope, after, CHANGES_PER_MESSAGE)
        if not found:
            return out
        out.append(Changes(scope, "log", after, found[-1].change_id, tuple(found)))
        after = found[-1].change_id
    return out


def withdrawal(scope: str) -> Changes:
    """The message that takes `scope` away from a robot: a snapshot with no rows, up to change 0."""
    return Changes(scope, "snapshot", 0, 0, (), str(uuid7()), 0, True)


class DownSyncService:
    """Serves down-sync over one broker connection; `run()` until cancelled."""

    def __init__(self, engine: AsyncEngine, login: BrokerLogin, *, poll_s: float = POLL_S) -> None:
        self._engine = engine
        self._poll_s = poll_s
        # A kept session (the link's): requests robots make while this is down wait for it.
        self._link = CloudLink(login, role="down-sync", logger=log, subscriptions=SUBSCRIPTIONS)
        self._pushed: dict[uuid.UUID, dict[str, int]] = {}  # online robots: scope -> change_id sent up to
        self._seen = 0  # the newest change_id the last poll found
        self.sent_messages = 0
        self.sent_changes = 0

    @property
    def subscribed(self) -> asyncio.Event:
        """Set once the broker has granted the subscriptions (again after each reconnect)."""
        return self._link.subscribed

    async def run(self) -> None:
        async with self._link:
            async with self._engine.connect() as conn:
                self._seen = await conn.run_sync(changes.last_change_id)
            while True:
                try:
                    async with asyncio.timeout(self._poll_s):
                        message = await self._link.receive()
                    await self._handle(message.topic, message.payload, message.retained)
                except TimeoutError:
                    await self._poll()
                except Exception:
                    log.exception("down-sync step failed; carrying on")
                    await asyncio.sleep(1.0)

    async def _handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        if (robot := robot_in_topic(topic, "status")) is not None:
            try:
                state = json.loads(payload).get("state")
            except (ValueError, AttributeError):
                state = None
            if state == "offline" and self._pushed.pop(robot, None) is not None:
                log.info("down-sync robot=%s went offline", robot)
            elif state == "online" and retained and robot not in self._pushed:
                # A retained status comes when this service subscribes: the robot went online before, and its
                # request (if any) went to a service that is gone. A live "online" is followed by a request.
                log.info("down-sync robot=%s online before this service: asking it to ask", robot)
                self._publish_bytes(robot, encode_ask_again())
            return
        robot = robot_in_topic(topic, "sync")
        if robot is None:
            return
        try:
            request = parse_request(payload)
        except ChangesRefused as err:
            log.warning("down-sync request refused robot=%s: %s", robot, err)
            return
        cursors = request.cursors
        scopes = await self._scopes(robot)
        self._pushed[robot] = {scope: cursors.get(scope, 0) for scope in scopes}
        log.info(
            "down-sync robot=%s asked request=%s; scopes %s",
            robot,
            request.request,
            ", ".join(sorted(scopes)),
        )
        if (
            self._withdraw(robot, set(cursors) - scopes)
            and await self._push(robot)
            and request.request is not None
        ):
            self._publish_bytes(robot, encode_answered(Answered(request.request)))

    async def _scopes(self, robot: uuid.UUID) -> set[str]:
        today = dt.datetime.now(dt.UTC).date()
        async with self._engine.connect() as conn:
            return await conn.run_sync(scopes_for, robot, today)

    async def _poll(self) -> None:
        async with self._engine.connect() as conn:
            newest = await conn.run_sync(changes.last_change_id)
        if newest <= self._seen:
            return
        self._seen = newest
        for robot in list(self._pushed):
            pushed = self._pushed[robot]
            scopes = await self._scopes(robot)
            for scope in scopes - pushed.keys():
                pushed[scope] = 0  # newly assigned: from the beginning (or a snapshot)
            gone = pushed.keys() - scopes
            for scope in gone:
                del pushed[scope]
            self._withdraw(robot, gone)
            await self._push(robot)

    def _withdraw(self, robot: uuid.UUID, scopes: set[str]) -> bool:
        """Tell `robot` to drop scopes it may no longer see (a train it is no longer assigned to): an empty
        snapshot up to 0, which leaves it no rows and no cursor there. False if one could not be sent."""
        sent = True
        for scope in sorted(scopes):
            log.info("down-sync robot=%s withdraws %s", robot, scope)
            sent = self._publish(robot, withdrawal(scope)) and sent
        return sent

    def _publish(self, robot: uuid.UUID, message: Changes) -> bool:
        if not self._publish_bytes(robot, encode_changes(message)):
            return False
        self.sent_messages += 1
        self.sent_changes += len(message.changes)
        return True

    def _publish_bytes(self, robot: uuid.UUID, payload: bytes) -> bool:
        # Not sent (logged by the link): no answer follows, and the robot asks again.
        return self._link.publish(f"{TOPIC_ROOT}/{robot}/down/changes", payload)

    async def _push(self, robot: uuid.UUID) -> bool:
        """Send `robot` everything after what it was last sent, scope by scope; False if a message could not
        be sent (the robot will ask again)."""
        pushed = self._pushed[robot]
        for scope in sorted(pushed):
            while True:
                async with self._engine.connect() as conn:
                    messages = await conn.run_sync(messages_for, scope, pushed[scope], READ_MESSAGES)
                if not messages:
                    break
                for message in messages:
                    if not self._publish(robot, message):
                        return False
                    pushed[scope] = message.upto
        return True
