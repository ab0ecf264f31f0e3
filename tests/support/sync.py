"""What sync tests put in the cloud database first: the robot with its public key, a store with an item."""

from __future__ import annotations

import datetime as dt
import textwrap
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_sync.db.database import create_engine, session_factory
from models.base_server import BASE_METADATA, Ticket, User
from models.columns import utcnow
from models.store_api import PurchaseLine
from models.store_server import STORE_METADATA
from models.sync_events import PurchaseMade
from robot_agent.clock import Clock
from robot_agent.store import activity


async def seed_cloud(db_url: str, robot: uuid.UUID, key: Ed25519PrivateKey) -> tuple[uuid.UUID, uuid.UUID]:
    """Register `robot` with `key`'s public half; add a store with one item whose stock is not counted.
    Returns (store id, item id)."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    store_id, item_id = uuid.uuid4(), uuid.uuid4()
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(BASE_METADATA.tables["robots"]).values(
                    id=robot, robot_model_id="rb2", robot_model_name="Railbot 2", public_key=pem.decode()
                )
            )
            await conn.execute(
                insert(STORE_METADATA.tables["stores"]).values(
                    id=store_id, name="Buffet", description="Snacks", logo_url="/b.png", store_type="SHOP"
                )
            )
            await conn.execute(
                insert(STORE_METADATA.tables["store_items"]).values(
                    id=item_id,
                    store_id=store_id,
                    name="Tea",
                    description="Tea",
                    price_penny=100,
                    balance=None,
                )
            )
    finally:
        await engine.dispose()
    return store_id, item_id


def make_purchases(store: Engine, store_id: uuid.UUID, item_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """`count` purchases of one item, recorded on the robot (its table and its outbox) in one transaction;
    their ids."""
    clock, made = Clock(), []
    with store.begin() as conn:
        for _ in range(count):
            bought = PurchaseMade(
                purchase_id=uuid.uuid4(),
                store_id=store_id,
                user_id=uuid.uuid4(),
                items=[PurchaseLine(item_id=item_id, count=1)],
                at=utcnow(),
            )
            activity.record(conn, bought, clock)
            made.append(bought.purchase_id)
    return made


def robot_toml(directory: Path, robot: uuid.UUID, broker_url: str, password: str, train: int = 742) -> Path:
    """A robot.toml in `directory` for `robot` on the broker (user = the robot's id), its key in robot.key and
    its database in robot.db; writes its broker credentials (0600)."""
    credentials = directory / "mqtt-credentials"
    credentials.write_text(f"{robot}:{password}\n")
    credentials.chmod(0o600)
    path = directory / "robot.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [robot]
            id = "{robot}"
            key_file = "robot.key"

            [assignment]
            train_number = {train}

            [cloud]
            mqtt_url = "{broker_url}"
            credentials_file = "mqtt-credentials"
            keepalive_s = 5

            [storage]
            database = "robot.db"

            [camera.source]
            type = "device"

            [tickets]
            scan = false

            [hardware]
            backend = "simulated"
            """
        )
    )
    return path


async def add_tickets(
    engine: AsyncEngine, count: int, train: int, passengers: int, departure: dt.datetime
) -> list[uuid.UUID]:
    """`count` tickets on `train` for `passengers` new passengers, through the cloud's sessions (so the change
    log has them, as it has what the APIs write); their ids."""
    users = [User(name=f"Passenger {i}") for i in range(passengers)]
    tickets = [
        Ticket(
            user_id=users[i % passengers].id,
            train_number=train,
            wagon_number=i % 20 + 1,
            place_number=i % 60 + 1,
            date=departure,
            station_id="MSK",
            destination_id="SPB",
            start_date=departure,
            code=f"T{train}-{i:08d}",
        )
        for i in range(count)
    ]
    async with session_factory(engine)() as session:
        session.add_all(users)
        await session.flush()
        for start in range(0, count, 20_000):
            session.add_all(tickets[start : start + 20_000])
            await session.flush()
        await session.commit()
    return [t.id for t in tickets]
