"""The ingest worker: takes robots' batches from the broker, has `Ingest` apply them, publishes the acks.

It moves bytes only (docs/sync.md). It subscribes through the shared subscription `$share/ingest/...`, so
several workers split the fleet's load; it keeps its MQTT session (messages that arrive while it is down wait
in the broker), and it acknowledges each message to the broker (manual PUBACK) only after the batch is
committed and its ack published: a worker killed mid-batch leaves the message to be delivered again, and
ingest's event ids make that harmless. Messages that arrive while a group is being applied wait, and are
applied together as the next group: one transaction and one commit for all of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from paho.mqtt.reasoncodes import ReasonCode

from broker_link.paho_link import connect_properties
from cloud_sync.errors import CloudSyncError
from cloud_sync.sync.broker_files import INGEST_SUBSCRIPTION
from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.ingest import Ingest
from cloud_sync.sync.mqtt_link import CloudLink, Received, paho_client
from models.sync_ack import encode_ack
from models.sync_batch import TOPIC_ROOT, robot_in_topic

log = logging.getLogger(__name__)

SUBSCRIPTION: Final = INGEST_SUBSCRIPTION
# At most this many batches in one transaction (up to 500 events each). The broker hands a worker at most its
# max_inflight_messages (20) unacknowledged messages, so a group is never larger than that anyway.
MAX_GROUP: Final = 20
RETRY_AFTER_S: Final = 1.0
RETIRE_TIMEOUT_S: Final = 10.0


class IngestWorker:
    """One ingest worker on one broker connection; `run()` until cancelled."""

    def __init__(self, ingest: Ingest, login: BrokerLogin) -> None:
        """`login.client_id` must stay the same across restarts of one worker: its session in the broker holds
        the messages handed to it and not yet acknowledged, and only a worker with that id gets them."""
        self._ingest = ingest
        self._client = CloudLink(
            login, role="ingest", logger=log, subscriptions=[SUBSCRIPTION], manual_ack=True
        )
        self.handled = 0

    @property
    def subscribed(self) -> asyncio.Event:
        """Set once the broker has granted the shared subscription (again after each reconnect)."""
        return self._client.subscribed

    async def run(self) -> None:
        async with self._client:
            while True:
                group = [await self._client.receive()]
                while len(group) < MAX_GROUP and (message := self._client.receive_nowait()) is not None:
                    group.append(message)
                await self._handle(group)

    async def _handle(self, group: list[Received]) -> None:
        try:
            acks = await self._ingest.handle_group([(m.topic, m.payload) for m in group])
        except Exception:
            if len(group) == 1:
                # The database is away (or worse): leave the message unacknowledged to the broker, so that
                # it comes again, and do not lose the worker.
                log.exception("batch not applied topic=%s", group[0].topic)
                await asyncio.sleep(RETRY_AFTER_S)
                return
            # One batch the database refuses must not hold back the others: try each on its own.
            log.warning("group of %d batches not applied; applying them one by one", len(group))
            for message in group:
                await self._handle([message])
            return
        for message, ack in zip(group, acks, strict=True):
            if ack is not None:
                robot = robot_in_topic(message.topic, "batch")
                self._client.publish(f"{TOPIC_ROOT}/{robot}/down/ack", encode_ack(ack), qos=1)
            self._client.ack(message)
            self.handled += 1


def retire_session(login: BrokerLogin) -> None:
    """End the broker session of a worker taken out of service, so that the shared group stops handing it
    batches. Its session outlives the process by CLOUD_SESSION_EXPIRY_S, and Mosquitto keeps giving it a share
    of the robots' batches meanwhile, which robots then wait out their ack timeout for. Connecting with the
    same client id and a clean start discards that session; disconnecting with no expiry leaves none behind.
    Batches the session held and never acknowledged come to the other workers again."""
    host, port = login.address
    client = paho_client(login)
    answered: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answered.append(reason)
    try:
        client.connect(host, port, clean_start=True, properties=connect_properties(0))
    except OSError as err:
        raise CloudSyncError(f"cannot reach the broker at {host}:{port}: {err}") from err
    deadline = time.monotonic() + RETIRE_TIMEOUT_S
    while not answered and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    if not answered:
        raise CloudSyncError(f"the broker at {host}:{port} did not answer within {RETIRE_TIMEOUT_S:g} s")
    if answered[0].is_failure:
        raise CloudSyncError(f"the broker refused {login.client_id!r}: {answered[0]}")
    client.disconnect()
    client.loop(timeout=0.1)
