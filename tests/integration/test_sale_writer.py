"""Sales reach the robots: a Store API purchase changes the stock robots copy, and the change log carries it
down (real broker, the robot's replica), on both databases."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from cloud_sync.db.tables import RobotAssignment
from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.downsync import DownSyncService
from models.base_server import Robot
from robot_agent.store import replica
from robot_agent.store.database import open_store
from robot_agent.sync.downsync import DownSync
from robot_agent.sync.mqtt import RobotLink
from tests.conftest import MosquittoFactory
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT
from tests.integration.test_store_api import add_item
from tests.support.cloud import Cloud
from tests.support.mosquitto import MosquittoBroker
from tests.support.tasks import eventually, stop

TRAIN = 42
PURCHASE = "/store_api/store/purchase"


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MosquittoBroker:
    return mosquitto_factory(users=PASSWORDS, acl=ACL)


async def test_a_store_api_purchase_reaches_the_robots_copy_of_the_stock(
    cloud: Cloud, broker: MosquittoBroker, tmp_path: Path
) -> None:
    async with cloud.context.sessions() as session:
        session.add(Robot(id=ROBOT, robot_model_id="rb2", robot_model_name="Railbot 2"))
        await session.flush()
        session.add(
            RobotAssignment(robot_id=ROBOT, train_number=TRAIN, train_date=dt.datetime.now(dt.UTC).date())
        )
        await session.commit()
    store, store_token = await cloud.store_with_token()
    tea = await add_item(cloud, store_token, balance=9)
    await cloud.ok(
        "POST",
        "/base_api/admin/train_store",
        json={"store_id": store, "train_number": TRAIN, "train_date": "2026-11-30T00:00:00+03:00"},
    )
    robot_store = open_store(tmp_path / "robot.db")
    items = replica.table("store_items")

    def robots_balance() -> int | None:
        with robot_store.connect() as conn:
            found = conn.execute(select(items.c.balance).where(items.c.id == uuid.UUID(tea["id"]))).scalar()
        return None if found is None else int(found)

    link = RobotLink(ROBOT, broker.url, str(ROBOT), PASSWORDS[str(ROBOT)], keepalive_s=5)
    login = BrokerLogin(broker.url, "cloud", PASSWORDS["cloud"], "sale-writer-test")
    service = DownSyncService(cloud.context.engine, login, poll_s=0.2)
    tasks = [asyncio.create_task(service.run(), name="down-sync service")]
    try:
        await eventually(service.subscribed.is_set, "down-sync subscribed", 10)
        await link.start()
        tasks.append(asyncio.create_task(DownSync(link, robot_store).run(), name="robot"))
        await eventually(lambda: robots_balance() == 9, "the item on the robot with 9", 20, in_thread=True)

        body = {"user_id": str(uuid.uuid4()), "items": [{"item_id": tea["id"], "count": 3}]}
        await cloud.ok("POST", PURCHASE, headers=store_token, json=body)
        assert (await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store_token))[
            "balance"
        ] == 6

        await eventually(lambda: robots_balance() == 6, "the robot's copy down to 6", 15, in_thread=True)
    finally:
        await stop(*tasks)
        await link.close()
