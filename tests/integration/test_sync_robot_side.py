"""The robot's side of sync over a real Mosquitto: outbox, sender and link, with a stand-in for the cloud
that decodes every batch, records its events and acks it (the cloud's ingest is the next step of issue 4).

Fault: events pile up while the broker is down; once it is back, every event reaches the stand-in, the
outbox empties, and nothing but duplicates on the wire (which ids make harmless) differs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine

from models.sync_batch import decode_batch
from robot_agent.clock import Clock
from robot_agent.store import outbox
from robot_agent.store.database import open_store
from robot_agent.sync.mqtt import RobotLink
from robot_agent.sync.sender import Sender
from tests.conftest import MosquittoFactory
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT
from tests.support.mosquitto import MosquittoBroker
from tests.support.tasks import stop

KEY = Ed25519PrivateKey.generate()


class CloudStandIn:
    """Subscribes to every robot's batches, verifies them, records the events' ids, and acks each batch."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.ids: set[uuid.UUID] = set()
        self.deliveries = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="cloud-stand-in", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.username_pw_set("cloud", PASSWORDS["cloud"])
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe("railbot/v1/robots/+/up/batch", qos=1)

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        robot = uuid.UUID(message.topic.split("/")[3])
        batch = decode_batch(bytes(message.payload), robot, KEY.public_key().public_bytes_raw())
        with self.lock:
            self.deliveries += len(batch.events)
            self.ids.update(e.id for e in batch.events)
        ack = {"batch": str(batch.id), "status": "committed", "applied": len(batch.events)}
        client.publish(f"railbot/v1/robots/{robot}/down/ack", json.dumps(ack).encode(), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.asynccontextmanager
async def robot(broker: MosquittoBroker, path: Path) -> AsyncIterator[tuple[Sender, RobotLink, Engine]]:
    store = open_store(path)
    async with RobotLink(ROBOT, broker.url, str(ROBOT), PASSWORDS[str(ROBOT)], keepalive_s=5) as link:
        sender = Sender(store, link, ROBOT, KEY, Clock(), ack_timeout_s=2.0)
        task = asyncio.create_task(sender.run())
        try:
            yield sender, link, store
        finally:
            await stop(task)


async def test_events_made_while_the_broker_is_down_all_arrive_once_it_is_back(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    cloud = CloudStandIn(broker)
    try:
        async with robot(broker, tmp_path / "robot.db") as (sender, link, store):
            async with asyncio.timeout(10):
                await link.wait_connected()
            await asyncio.to_thread(broker.kill)
            clock = Clock()
            with store.begin() as conn:
                for n in range(2_000):
                    outbox.append(conn, "purchase", {"n": n}, clock)
            sender.wake()
            await asyncio.sleep(0.3)
            assert (await sender.backlog()).events == 2_000
            await asyncio.to_thread(broker.start)
            for _ in range(600):  # 30 s
                if not (await sender.backlog()).events:
                    break
                await asyncio.sleep(0.05)
            assert (await sender.backlog()).events == 0, "the outbox did not drain within 30 s"
    finally:
        cloud.close()
    with cloud.lock:
        assert len(cloud.ids) == 2_000
        assert cloud.deliveries >= 2_000
