"""Down-sync of 100,000 tickets to a fresh robot vs the same messages over raw paho; the agent's memory.

1. Down-sync: a cloud database (SQLite) holds 100,000 tickets for the robot's train (1,000 passengers); the
   clock runs from the robot's connect to the last ticket committed in its database (the cloud reads its log,
   the messages cross the broker, the robot decodes and upserts them). Baseline: the very same messages
   published with raw paho QoS 1 to a subscriber that only receives them.
2. Memory: `robot-agent run` as a process, its outbox holding 100,000 events, connected to a broker with no
   ingest behind it (so nothing drains), VmRSS after it has settled. Baseline: the same agent with an empty
   outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine

from bench.report import Figure
from cloud_sync.db.database import create_engine, session_factory
from cloud_sync.db.migrate import upgrade
from cloud_sync.db.tables import RobotAssignment
from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.downsync import DownSyncService, messages_for
from models.base_server import Robot
from models.sync_changes import ALL_SCOPE, encode_changes, robot_scope, train_scope
from robot_agent.identity import create_key_file
from robot_agent.store import replica
from robot_agent.store.database import open_store
from robot_agent.sync.downsync import DownSync
from robot_agent.sync.mqtt import RobotLink
from tests.support.mosquitto import MosquittoBroker
from tests.support.sync import add_tickets, make_purchases, robot_toml

TICKETS = 100_000
PASSENGERS = 1_000
BACKLOG = 100_000
TRAIN = 742
TIMEOUT_S = 300.0
SETTLE_S = 5.0
BIN = Path(sys.executable).parent
ACL = """
user cloud
topic readwrite #

pattern write railbot/v1/robots/%u/up/#
pattern read railbot/v1/robots/%u/down/#
"""


def broker_for(work: Path, robot: uuid.UUID) -> tuple[MosquittoBroker, dict[str, str]]:
    users = {"cloud": secrets.token_urlsafe(12), str(robot): secrets.token_urlsafe(12)}
    broker = MosquittoBroker(directory=work / "mosquitto", users=users, acl=ACL)
    broker.start()
    return broker, users


async def fill_cloud(db_url: str, robot: uuid.UUID) -> None:
    engine = create_engine(db_url)
    departure = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    async with session_factory(engine)() as session:
        session.add(Robot(id=robot, robot_model_id="rb2", robot_model_name="Railbot 2"))
        await session.flush()
        session.add(RobotAssignment(robot_id=robot, train_number=TRAIN, train_date=departure.date()))
        await session.commit()
    await add_tickets(engine, TICKETS, TRAIN, PASSENGERS, departure)
    await engine.dispose()


async def downsync_seconds(
    db_url: str, broker: MosquittoBroker, users: dict[str, str], robot: uuid.UUID, work: Path
) -> float:
    engine = create_engine(db_url)
    service = DownSyncService(engine, BrokerLogin(broker.url, "cloud", users["cloud"], "bench-downsync"))
    store = open_store(work / "robot.db")
    link = RobotLink(robot, broker.url, str(robot), users[str(robot)], keepalive_s=10)
    down = DownSync(link, store)
    tasks = [asyncio.create_task(service.run())]
    try:
        async with asyncio.timeout(30):
            await service.subscribed.wait()
        started = time.perf_counter()
        await link.start()
        tasks.append(asyncio.create_task(down.run()))
        async with asyncio.timeout(TIMEOUT_S):
            while await asyncio.to_thread(_tickets, store) < TICKETS:
                # Set after each message applied; the timeout covers one applied between count and wait.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await down.changed.wait()
        return time.perf_counter() - started
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.close()
        store.dispose()
        await engine.dispose()


def _tickets(store: Engine) -> int:
    with store.connect() as conn:
        return replica.count(conn, "tickets")


async def the_messages(db_url: str, robot: uuid.UUID) -> list[bytes]:
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        messages = [
            encode_changes(m)
            for scope in (ALL_SCOPE, robot_scope(robot), train_scope(TRAIN))
            for m in await conn.run_sync(messages_for, scope, 0)
        ]
    await engine.dispose()
    return messages


def raw_seconds(
    broker: MosquittoBroker, users: dict[str, str], robot: uuid.UUID, payloads: list[bytes]
) -> float:
    """The same payloads, cloud -> robot over raw paho QoS 1: publish all, until the last is received."""
    done, received = threading.Event(), [0]
    topic = f"railbot/v1/robots/{robot}/down/changes"

    def client(user: str) -> mqtt.Client:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"raw-{user[:8]}-{secrets.token_hex(2)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.username_pw_set(user, users[user])
        c.max_inflight_messages_set(20)
        return c

    subscriber, publisher = client(str(robot)), client("cloud")
    subscribed = threading.Event()
    subscriber.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    subscriber.on_subscribe = lambda *_: subscribed.set()

    def on_message(*_: object) -> None:
        received[0] += 1
        if received[0] == len(payloads):
            done.set()

    subscriber.on_message = on_message
    for c in (subscriber, publisher):
        c.connect(broker.host, broker.port)
        c.loop_start()
    try:
        if not subscribed.wait(30):
            raise RuntimeError("the raw subscriber never subscribed")
        started = time.perf_counter()
        for payload in payloads:
            publisher.publish(topic, payload, qos=1)
        if not done.wait(TIMEOUT_S):
            raise RuntimeError(f"raw paho: {received[0]} of {len(payloads)} messages arrived")
        return time.perf_counter() - started
    finally:
        for c in (subscriber, publisher):
            c.disconnect()
            c.loop_stop()


def agent_rss_mib(
    broker: MosquittoBroker, users: dict[str, str], robot: uuid.UUID, work: Path, backlog: int
) -> float:
    """VmRSS of `robot-agent run` with `backlog` events in its outbox, connected, nothing acking."""
    work.mkdir(parents=True, exist_ok=True)
    create_key_file(work / "robot.key")
    store = open_store(work / "robot.db")
    for start in range(0, backlog, 10_000):
        make_purchases(store, uuid.uuid4(), uuid.uuid4(), min(10_000, backlog - start))
    store.dispose()
    config = robot_toml(work, robot, broker.url, users[str(robot)], TRAIN)
    log = (work / "agent.log").open("wb")
    agent = subprocess.Popen(
        [str(BIN / "robot-agent"), "--config", str(config), "run"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while b"connected" not in (work / "agent.log").read_bytes():
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"robot-agent did not connect:\n{(work / 'agent.log').read_text()}")
            time.sleep(0.1)
        time.sleep(SETTLE_S)  # it has read its backlog and sent its first batches
        return _rss_kib(agent.pid) / 1024
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        log.close()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _measure() -> Iterator[Figure]:
    with tempfile.TemporaryDirectory(prefix="railbot-bench-downsync-") as tmp:
        work = Path(tmp)
        robot = uuid.uuid4()
        broker, users = broker_for(work, robot)
        try:
            db_url = f"sqlite:///{work / 'cloud.db'}"
            upgrade(db_url)
            asyncio.run(fill_cloud(db_url, robot))
            took = asyncio.run(downsync_seconds(db_url, broker, users, robot, work))
            raw = raw_seconds(broker, users, robot, asyncio.run(the_messages(db_url, robot)))
            yield Figure(
                f"down-sync {TICKETS:,} tickets (ms)",
                took * 1000,
                "raw paho QoS 1, same messages",
                raw * 1000,
                "ms",
            )
            other = uuid.uuid4()
            broker.stop()
            broker2, users2 = broker_for(work / "rss", other)
            try:
                full = agent_rss_mib(broker2, users2, other, work / "rss" / "full", BACKLOG)
                empty = agent_rss_mib(broker2, users2, other, work / "rss" / "empty", 0)
            finally:
                broker2.kill()
            yield Figure(f"robot-agent RSS, {BACKLOG:,}-event backlog", full, "empty outbox", empty, "MiB")
        finally:
            broker.kill()


def run() -> list[Figure]:
    return list(_measure())
