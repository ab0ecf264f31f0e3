"""What the sync benchmark runs on: a private Mosquitto, a fresh cloud database, `cloud-sync ingest` as a
process, robots with their outboxes, senders and links, and the baseline (plain paho QoS 1 publishing).

Scenarios live in `bench/bench_sync.py`; each takes a `Rig`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import func, insert, select
from uuid_utils.compat import uuid7

from cloud_sync.db.database import create_engine
from cloud_sync.sync.ingest_worker import SUBSCRIPTION
from models.base_server import BASE_METADATA
from models.columns import utcnow
from models.store_api import PurchaseLine
from models.store_server import STORE_METADATA
from models.sync_batch import encode_batch
from models.sync_events import PurchaseMade, event_payload
from robot_agent.clock import Clock
from robot_agent.store import outbox
from robot_agent.store.database import open_store
from robot_agent.store.tables import OutboxRow
from robot_agent.sync.mqtt import RobotLink
from robot_agent.sync.sender import Sender
from tests.support.mosquitto import MosquittoBroker

BIN = Path(sys.executable).parent
RAW_MESSAGES = 10_000
READY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 120.0
POLL_S = 0.01
INGEST_USER = "cloud"
INGEST_CLIENT_ID = "bench-ingest"
ACL = """
user cloud
topic readwrite #

pattern write railbot/v1/robots/%u/up/#
pattern read railbot/v1/robots/%u/down/#
"""
_OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]
_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")


class BenchSetupError(Exception):
    """Something the benchmark needs did not come up or did not finish: a process, the broker, a drain."""


@dataclass(frozen=True)
class BenchRobot:
    """A robot as the cloud knows it (id, key) and as the broker does (user = its id, password)."""

    id: uuid.UUID
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))


@dataclass
class Rig:
    """What every scenario runs on: one broker, one cloud database, its ingest process, the robots."""

    label: str
    broker: MosquittoBroker
    db_url: str
    work: Path
    robots: dict[str, list[BenchRobot]]
    ingest_password: str
    store_id: uuid.UUID = field(default_factory=uuid.uuid4)
    item_id: uuid.UUID = field(default_factory=uuid.uuid4)
    ingest: subprocess.Popen[bytes] | None = None

    @property
    def ingest_log(self) -> Path:
        return self.work / "ingest.log"


# -- the baseline -------------------------------------------------------------------------------------------


def raw_publish_rate(broker: MosquittoBroker, password: str, size: int, count: int = RAW_MESSAGES) -> float:
    """Messages of `size` bytes a second that a plain paho client gets PUBACKed at QoS 1 (paho's defaults)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(INGEST_USER, password)
    connected, done = threading.Event(), threading.Event()
    acked = 0

    def on_connect(*_args: object) -> None:
        connected.set()

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        if acked == count:
            done.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        if not connected.wait(READY_TIMEOUT_S):
            raise BenchSetupError("the raw publisher could not connect")
        payload = os.urandom(size)
        start = time.perf_counter()
        for _ in range(count):
            client.publish("bench/raw", payload, qos=1)
        if not done.wait(DRAIN_TIMEOUT_S):
            raise BenchSetupError(f"raw publishing: {acked} of {count} PUBACKed")
        return count / (time.perf_counter() - start)
    finally:
        client.disconnect()
        client.loop_stop()


def raw_delivered_rate(broker: MosquittoBroker, password: str, size: int, count: int = RAW_MESSAGES) -> float:
    """Messages of `size` bytes a second published at QoS 1 and received by a QoS 1 subscriber: publishing one
    message per event with something at the other end, the design batching replaces (no database)."""
    topic = "bench/raw-delivered"
    received, subscribed, done = [0], threading.Event(), threading.Event()

    def client(name: str) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5)
        c.username_pw_set(INGEST_USER, password)
        return c

    def on_message(*_args: object) -> None:
        received[0] += 1
        if received[0] == count:
            done.set()

    subscriber, publisher = client("bench-raw-sub"), client("bench-raw-pub")
    subscriber.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.on_message = on_message
    for c in (subscriber, publisher):
        c.connect(broker.host, broker.port)
        c.loop_start()
    try:
        if not subscribed.wait(READY_TIMEOUT_S):
            raise BenchSetupError("the raw subscriber could not subscribe")
        payload = os.urandom(size)
        start = time.perf_counter()
        for _ in range(count):
            publisher.publish(topic, payload, qos=1)
        if not done.wait(DRAIN_TIMEOUT_S):
            raise BenchSetupError(f"raw delivery: {received[0]} of {count} received")
        return count / (time.perf_counter() - start)
    finally:
        for c in (subscriber, publisher):
            c.disconnect()
            c.loop_stop()


def event_payload_size(rig: Rig) -> int:
    """The bytes of one purchase on the wire: a signed batch holding one event, as the sender builds it."""
    robot = rig.robots["one"][0]
    path = rig.work / "size" / "robot.db"
    fill_outbox(path, rig.store_id, rig.item_id, 1)
    store = open_store(path)
    try:
        with store.begin() as conn:
            batch = outbox.take_batch(conn)
    finally:
        store.dispose()
    assert batch is not None
    return len(encode_batch(robot.id, batch.id, Clock().wall_ms(), batch.events, robot.key))


# -- the cloud side -----------------------------------------------------------------------------------------


async def register(db_url: str, robots: list[BenchRobot], store_id: uuid.UUID, item_id: uuid.UUID) -> None:
    """The robots with their public keys, and a store with one item whose stock is not counted."""
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(BASE_METADATA.tables["robots"]),
                [
                    {
                        "id": robot.id,
                        "robot_model_id": "rb2",
                        "robot_model_name": "Railbot 2",
                        "public_key": robot.key.public_key()
                        .public_bytes(
                            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                        )
                        .decode(),
                    }
                    for robot in robots
                ],
            )
            await conn.execute(
                insert(STORE_METADATA.tables["stores"]).values(
                    id=store_id, name="Buffet", description="Snacks", logo_url="/b.png", store_type="SHOP"
                )
            )
            await conn.execute(
                insert(STORE_METADATA.tables["store_items"]).values(
                    id=item_id, store_id=store_id, name="Tea", description="Tea", price_penny=100
                )
            )
    finally:
        await engine.dispose()


async def stored_purchases(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(STORE_METADATA.tables["purchases"])
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


def start_ingest(rig: Rig) -> None:
    """`cloud-sync ingest` as a process; returns once the broker has its shared subscription."""
    credentials = rig.work / "ingest-credentials"
    credentials.write_text(f"{INGEST_USER}:{rig.ingest_password}\n")
    credentials.chmod(0o600)
    # One id for every start, on every database: the broker keeps a stopped worker's session in the shared
    # group and goes on handing it every other message (eclipse-mosquitto/mosquitto#1747), which only a worker
    # with that id receives; a robot waits out its ack timeout (10 s) for each.
    client_id = INGEST_CLIENT_ID
    seen = rig.broker.log_file.stat().st_size
    with rig.ingest_log.open("ab") as log:
        rig.ingest = subprocess.Popen(
            [
                *(str(BIN / "cloud-sync"), "ingest", "--db", rig.db_url, "--mqtt", rig.broker.url),
                *("--credentials", str(credentials), "--client-id", client_id),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    wanted = f"{client_id} 1 {SUBSCRIPTION}"
    while wanted not in rig.broker.log_file.read_bytes()[seen:].decode(errors="replace"):
        if rig.ingest.poll() is not None or time.monotonic() > deadline:
            raise BenchSetupError(f"ingest did not subscribe: see {rig.ingest_log}")
        time.sleep(0.02)


def ingest_problems(rig: Rig) -> list[str]:
    """The lines of ingest's log that report an error."""
    return [line for line in rig.ingest_log.read_text().splitlines() if _PROBLEM.search(line)]


def stop_ingest(rig: Rig) -> None:
    if rig.ingest is not None and rig.ingest.poll() is None:
        rig.ingest.send_signal(signal.SIGTERM)
        try:
            rig.ingest.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rig.ingest.kill()
            rig.ingest.wait()
    rig.ingest = None


# -- the robot side -----------------------------------------------------------------------------------------


def fill_outbox(path: Path, store_id: uuid.UUID, item_id: uuid.UUID, events: int) -> None:
    """`events` purchases of one item in the outbox at `path`, as `outbox.append` writes them (the same row,
    the same canonical CBOR) but in one executemany: appending them one by one (with the robot's own copy of
    each purchase, `activity.record`) takes ~0.75 ms each, minutes for the whole benchmark."""
    clock = Clock()
    rows = []
    for _ in range(events):
        kind, data = event_payload(
            PurchaseMade(
                purchase_id=uuid.uuid4(),
                store_id=store_id,
                user_id=uuid.uuid4(),
                items=[PurchaseLine(item_id=item_id, count=1)],
                at=utcnow(),
            )
        )
        rows.append(
            {
                "id": uuid7(),
                "type": kind,
                "wall_ms": clock.wall_ms(),
                "mono_ms": clock.mono_ms(),
                "boot": clock.boot,
                "data": cbor2.dumps(data, canonical=True),
            }
        )
    store = open_store(path)
    try:
        with store.begin() as conn:
            conn.execute(insert(_OUTBOX), rows)
    finally:
        store.dispose()


def fill_outboxes(rig: Rig, robots: list[BenchRobot], events_each: int) -> None:
    """`events_each` purchases in each robot's outbox (a fresh SQLite file per robot)."""
    for robot in robots:
        fill_outbox(rig.work / "robots" / f"{robot.id}.db", rig.store_id, rig.item_id, events_each)


@contextlib.asynccontextmanager
async def links(rig: Rig, robots: list[BenchRobot]) -> AsyncIterator[list[RobotLink]]:
    """Each robot's MQTT link, connected."""
    async with contextlib.AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(
                RobotLink(robot.id, rig.broker.url, str(robot.id), robot.password, keepalive_s=30)
            )
            for robot in robots
        ]
        async with asyncio.timeout(READY_TIMEOUT_S):
            for link in opened:
                await link.wait_connected()
        yield opened


async def drain(rig: Rig, robots: list[BenchRobot], robot_links: list[RobotLink], events_each: int) -> float:
    """Start every robot's sender on its full outbox; seconds until every batch is acknowledged."""
    stores = [open_store(rig.work / "robots" / f"{robot.id}.db") for robot in robots]
    senders = [
        Sender(store, link, robot.id, robot.key, Clock())
        for store, link, robot in zip(stores, robot_links, robots, strict=True)
    ]
    batches = -(-events_each // outbox.MAX_BATCH_EVENTS) * len(robots)
    start = time.perf_counter()
    tasks = [asyncio.create_task(sender.run(), name=f"sender {n}") for n, sender in enumerate(senders)]
    try:
        for _ in range(round(DRAIN_TIMEOUT_S / POLL_S)):
            if sum(sender.acked_batches for sender in senders) >= batches:
                break
            await asyncio.sleep(POLL_S)
        else:
            raise BenchSetupError(f"the outboxes did not drain in {DRAIN_TIMEOUT_S:.0f} s")
        elapsed = time.perf_counter() - start
        left = [(await sender.backlog()).events for sender in senders]
        if any(left):
            raise BenchSetupError(f"outboxes not empty after every batch was acked: {sum(left)} events")
        return elapsed
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for store in stores:
            store.dispose()


# -- databases and the broker -------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_database(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'cloud.db'}"
