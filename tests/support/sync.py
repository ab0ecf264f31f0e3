"""What sync tests put in the cloud database first: the robot with its public key, a store with an item."""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, insert

from cloud_sync.database import create_engine
from models.base_server import BASE_METADATA
from models.columns import utcnow
from models.store_api import PurchaseLine
from models.store_server import STORE_METADATA
from models.sync_events import PurchaseMade
from robot_agent.store import activity
from robot_agent.store.outbox import Clock


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
