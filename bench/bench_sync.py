"""Sync up, SQLite and PostgreSQL: events from robots' outboxes to committed cloud rows vs raw paho QoS 1.

Everything is real: a private Mosquitto on a free port, a fresh migrated cloud database, `cloud-sync ingest`
as its own process, and in this process the robots' outboxes (SQLite files, synchronous=FULL), senders and
links as the robot agent runs them. The baseline is a plain paho client publishing messages of one event's
size (a signed batch of one purchase) at QoS 1 to the same broker, measured right before each figure.

- 1 robot: a full outbox drained, events per second until every batch is acknowledged (the ack comes only
  after the cloud's commit), against raw publishes per second. Target: 2x.
- 50 robots, each with its own id, key, MQTT user and outbox, against the same ingest.
- A 100,000-event backlog: the outbox filled first, then ingest and the sender started; seconds to drain
  (ingest's start-up included; the sender starts once ingest has subscribed, since the broker drops what is
  published to a shared subscription nobody holds yet), against the time raw publishing would take.

Each scenario is a function of a `Rig` (broker, database, ingest process, robots), so more can be added
beside them (down-sync of tickets, the agent's memory with a backlog).
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
import uuid
from pathlib import Path

from bench.databases import postgres_database
from bench.report import Figure
from bench.sync_rig import (
    ACL,
    INGEST_USER,
    BenchRobot,
    BenchSetupError,
    Rig,
    drain,
    event_payload_size,
    fill_outboxes,
    ingest_problems,
    links,
    raw_delivered_rate,
    raw_publish_rate,
    register,
    sqlite_database,
    start_ingest,
    stop_ingest,
    stored_purchases,
)
from cloud_sync.db.migrate import upgrade
from tests.support.mosquitto import MosquittoBroker

ONE_ROBOT_EVENTS = 20_000
FLEET_ROBOTS = 50
FLEET_EVENTS_EACH = 1_000
BACKLOG_EVENTS = 100_000
TARGET = 2.0


# -- the scenarios ------------------------------------------------------------------------------------------


async def _drain_figures(rig: Rig, group: str, events_each: int, event_size: int, what: str) -> list[Figure]:
    """Fill the outboxes of `rig.robots[group]`, measure raw publishing, drain them: events/s against raw
    publishes (nobody receiving) and against raw publishes a subscriber receives."""
    robots = rig.robots[group]
    await asyncio.to_thread(fill_outboxes, rig, robots, events_each)
    raw = await asyncio.to_thread(raw_publish_rate, rig.broker, rig.ingest_password, event_size)
    delivered = await asyncio.to_thread(raw_delivered_rate, rig.broker, rig.ingest_password, event_size)
    async with links(rig, robots) as robot_links:
        seconds = await drain(rig, robots, robot_links, events_each)
    rate = len(robots) * events_each / seconds
    return [
        Figure(
            f"sync {rig.label}: {what}",
            rate,
            f"raw QoS 1 publishes ({event_size} B)",
            raw,
            "events/s",
            f">= {TARGET:.2f}",
        ),
        Figure(
            f"sync {rig.label}: {what}",
            rate,
            f"raw QoS 1 publish->subscriber ({event_size} B)",
            delivered,
            "events/s",
            f">= {TARGET:.2f}",
        ),
    ]


async def one_robot(rig: Rig, event_size: int) -> list[Figure]:
    what = "1 robot"
    return await _drain_figures(rig, "one", ONE_ROBOT_EVENTS, event_size, what)


async def fleet(rig: Rig, event_size: int) -> list[Figure]:
    what = f"{FLEET_ROBOTS} robots"
    return await _drain_figures(rig, "fleet", FLEET_EVENTS_EACH, event_size, what)


async def backlog(rig: Rig, event_size: int) -> list[Figure]:
    robots = rig.robots["backlog"]
    stop_ingest(rig)
    await asyncio.to_thread(fill_outboxes, rig, robots, BACKLOG_EVENTS)
    raw = await asyncio.to_thread(raw_publish_rate, rig.broker, rig.ingest_password, event_size)
    async with links(rig, robots) as robot_links:
        start = time.perf_counter()
        await asyncio.to_thread(start_ingest, rig)
        seconds = time.perf_counter() - start + await drain(rig, robots, robot_links, BACKLOG_EVENTS)
    return [
        Figure(
            f"sync {rig.label}: {BACKLOG_EVENTS:,} backlog, drain s",
            seconds,
            f"{BACKLOG_EVENTS:,} raw QoS 1 publishes",
            BACKLOG_EVENTS / raw,
            "s",
        ),
        Figure(
            f"sync {rig.label}: {BACKLOG_EVENTS:,} backlog, events/s",
            BACKLOG_EVENTS / seconds,
            f"raw QoS 1 publishes ({event_size} B)",
            raw,
            "events/s",
            f">= {TARGET:.2f}",
        ),
    ]


async def bench_database(rig: Rig) -> list[Figure]:
    await register(rig.db_url, [r for group in rig.robots.values() for r in group], rig.store_id, rig.item_id)
    event_size = event_payload_size(rig)
    await asyncio.to_thread(start_ingest, rig)
    try:
        figures = await one_robot(rig, event_size)
        figures += await fleet(rig, event_size)
        figures += await backlog(rig, event_size)
    finally:
        stop_ingest(rig)
    expected = ONE_ROBOT_EVENTS + FLEET_ROBOTS * FLEET_EVENTS_EACH + BACKLOG_EVENTS
    stored = await stored_purchases(rig.db_url)
    if stored != expected:
        raise BenchSetupError(f"{rig.label}: {stored:,} purchases in the cloud, {expected:,} made")
    problems = ingest_problems(rig)
    if problems:
        raise BenchSetupError(f"{rig.label}: ingest logged problems, first: {problems[0]}")
    return figures


def run() -> list[Figure]:
    robots = {
        "one": [BenchRobot(uuid.uuid4())],
        "fleet": [BenchRobot(uuid.uuid4()) for _ in range(FLEET_ROBOTS)],
        "backlog": [BenchRobot(uuid.uuid4())],
    }
    ingest_password = secrets.token_urlsafe(12)
    users = {INGEST_USER: ingest_password} | {
        str(r.id): r.password for group in robots.values() for r in group
    }
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="railbot-bench-sync-") as tmp:
        # The limits `cloud-sync broker-config` sets (docs/sync.md): with Mosquitto's default queue of 1,000 a
        # subscriber that falls behind loses QoS 1 messages (the raw delivery baseline lost 4,400 of 10,000).
        limits = "max_queued_messages 100000\nmax_inflight_messages 20"
        broker = MosquittoBroker(
            directory=Path(tmp) / "mosquitto",
            users=users,
            acl=ACL,
            extra_config=f"log_type subscribe\n{limits}",
        )
        broker.start()
        try:
            for label, database in (
                ("SQLite", sqlite_database(Path(tmp))),
                ("PostgreSQL", postgres_database()),
            ):
                with database as url:
                    upgrade(url)
                    work = Path(tmp) / label.lower()
                    work.mkdir()
                    rig = Rig(label, broker, url, work, robots, ingest_password)
                    figures += asyncio.run(bench_database(rig))
        finally:
            broker.stop()
    return figures
