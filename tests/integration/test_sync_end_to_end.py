"""Sync end to end: purchases made on the robot reach the cloud database exactly once, through a real
Mosquitto, the robot's outbox, sender and link, and the ingest worker, on SQLite and PostgreSQL.

Fault 1 of issue 4: 10,000 purchases are made while the broker is down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud_sync.db.database import create_engine
from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.ingest import Ingest
from cloud_sync.sync.ingest_worker import IngestWorker
from models.store_server import STORE_METADATA
from robot_agent.clock import Clock
from robot_agent.store.database import open_store
from robot_agent.sync.mqtt import RobotLink
from robot_agent.sync.sender import Sender
from tests.conftest import MosquittoFactory
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT
from tests.support.sync import make_purchases, seed_cloud
from tests.support.tasks import stop

PURCHASES = 10_000


@contextlib.asynccontextmanager
async def running(*coroutines: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        await stop(*tasks)


async def test_purchases_made_while_the_broker_is_down_reach_the_cloud_once(
    cloud_db_url: str, mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    store_id, item_id = await seed_cloud(cloud_db_url, ROBOT, key)
    engine = create_engine(cloud_db_url)
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    robot_db = open_store(tmp_path / "robot.db")
    worker = IngestWorker(Ingest(engine), BrokerLogin(broker.url, "cloud", PASSWORDS["cloud"], "ingest-test"))
    try:
        async with RobotLink(ROBOT, broker.url, str(ROBOT), PASSWORDS[str(ROBOT)], keepalive_s=5) as link:
            sender = Sender(robot_db, link, ROBOT, key, Clock(), ack_timeout_s=3.0)
            async with running(worker.run(), sender.run()):
                async with asyncio.timeout(10):
                    await link.wait_connected()
                    await worker.subscribed.wait()
                await asyncio.to_thread(broker.kill)
                made = make_purchases(robot_db, store_id, item_id, PURCHASES)
                sender.wake()
                await asyncio.to_thread(broker.start)
                for _ in range(1_200):  # 60 s
                    if not (await sender.backlog()).events:
                        break
                    await asyncio.sleep(0.05)
                assert (await sender.backlog()).events == 0, "the robot's outbox did not drain in 60 s"
        purchases = STORE_METADATA.tables["purchases"]
        async with engine.connect() as conn:
            stored = set((await conn.execute(select(purchases.c.id))).scalars())
            tasks = (
                await conn.execute(select(func.count()).select_from(STORE_METADATA.tables["tasks"]))
            ).scalar()
        assert stored == set(made)
        assert tasks == PURCHASES
    finally:
        await engine.dispose()
