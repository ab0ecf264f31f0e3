"""Ingest on SQLite and PostgreSQL: a robot's signed batch applied exactly once, conflicts recorded, and
everything that does not verify dead-lettered without touching the seed's tables."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_sync.database import create_engine
from cloud_sync.ingest import Ingest
from cloud_sync.tables import CLOUD_METADATA
from models.base_server import BASE_METADATA
from models.columns import utcnow
from models.store_api import PurchaseLine
from models.store_server import STORE_METADATA
from models.sync_batch import MAX_BATCH_BYTES, BatchEvent, encode_batch
from models.sync_events import EventData, PurchaseMade, TicketChecked, event_payload

AT = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
T = {**BASE_METADATA.tables, **STORE_METADATA.tables, **CLOUD_METADATA.tables}


@dataclass
class World:
    engine: AsyncEngine
    ingest: Ingest
    robot: uuid.UUID
    key: Ed25519PrivateKey
    store: uuid.UUID
    tea: uuid.UUID  # counted, balance 3
    cake: uuid.UUID  # not counted
    ticket: uuid.UUID
    seq: int = 0

    @property
    def topic(self) -> str:
        return f"railbot/v1/robots/{self.robot}/up/batch"

    def batch(
        self, *data: EventData, key: Ed25519PrivateKey | None = None, batch_id: uuid.UUID | None = None
    ) -> bytes:
        events = []
        for item in data:
            self.seq += 1
            kind, values = event_payload(item)
            events.append(
                BatchEvent(
                    uuid.uuid4(),
                    self.seq,
                    kind,
                    1_796_000_000_000,
                    self.seq,
                    uuid.UUID(int=1),
                    cbor2.dumps(values),
                )
            )
        return encode_batch(self.robot, batch_id or uuid.uuid4(), 1_796_000_000_000, events, key or self.key)

    async def count(self, table: str, **where: Any) -> int:
        query = select(func.count()).select_from(T[table])
        for column, value in where.items():
            query = query.where(T[table].c[column] == value)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def value(self, table: str, column: str, key: uuid.UUID) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(T[table].c[column]).where(T[table].c.id == key))).scalar_one()


@pytest.fixture
async def world(cloud_db_url: str) -> AsyncIterator[World]:
    engine = create_engine(cloud_db_url)
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ids = {name: uuid.uuid4() for name in ("robot", "store", "tea", "cake", "ticket", "user")}
    async with engine.begin() as conn:
        await conn.execute(
            insert(T["robots"]).values(
                id=ids["robot"], robot_model_id="rb2", robot_model_name="Railbot 2", public_key=pem.decode()
            )
        )
        await conn.execute(
            insert(T["stores"]).values(
                id=ids["store"], name="Buffet", description="Snacks", logo_url="/b.png", store_type="SHOP"
            )
        )
        for item, balance in (("tea", 3), ("cake", None)):
            await conn.execute(
                insert(T["store_items"]).values(
                    id=ids[item],
                    store_id=ids["store"],
                    name=item,
                    description=item,
                    price_penny=100,
                    balance=balance,
                )
            )
        await conn.execute(insert(T["users"]).values(id=ids["user"], name="Anna"))
        await conn.execute(
            insert(T["tickets"]).values(
                id=ids["ticket"], user_id=ids["user"], train_number=742, wagon_number=5, place_number=36,
                date=AT, station_id="2000000", destination_id="2004000", start_date=AT, code="A7K2Q9",
            )
        )  # fmt: skip
    yield World(
        engine, Ingest(engine), ids["robot"], key, ids["store"], ids["tea"], ids["cake"], ids["ticket"]
    )
    await engine.dispose()


def purchase(
    world: World, *lines: tuple[uuid.UUID, int], purchase_id: uuid.UUID | None = None
) -> PurchaseMade:
    return PurchaseMade(
        purchase_id=purchase_id or uuid.uuid4(),
        store_id=world.store,
        user_id=uuid.uuid4(),
        items=[PurchaseLine(item_id=i, count=c) for i, c in lines],
        is_default_ready=True,
        at=AT,
    )


async def test_a_batch_is_applied_once_however_often_it_comes(world: World) -> None:
    bought = purchase(world, (world.tea, 2), (world.cake, 5))
    payload = world.batch(
        bought, TicketChecked(ticket_id=world.ticket, verdict="valid", train_number=742, at=AT)
    )
    first = await world.ingest.handle(world.topic, payload)
    assert first is not None
    assert (first["status"], first["applied"], first["skipped"]) == ("committed", 2, 0)
    again = await world.ingest.handle(world.topic, payload)  # the ack was lost: the robot sent it again
    assert again is not None
    assert (again["status"], again["applied"], again["skipped"]) == ("committed", 0, 2)
    assert await world.count("purchases", id=bought.purchase_id) == 1
    assert await world.count("tasks", purchase_id=bought.purchase_id) == 1
    assert await world.count("purchase_items", purchase_id=bought.purchase_id) == 2
    assert await world.value("store_items", "balance", world.tea) == 1
    assert await world.value("tickets", "used", world.ticket) is True
    assert await world.count("sync_applied_events", robot_id=world.robot) == 2
    assert await world.count("sync_conflicts") == 0


async def test_conflicts_are_recorded_and_the_passengers_purchase_stands(world: World) -> None:
    oversold = purchase(world, (world.tea, 5))
    unknown = purchase(world, (uuid.uuid4(), 1))
    twice = TicketChecked(ticket_id=world.ticket, verdict="valid", train_number=742, at=AT)
    ack = await world.ingest.handle(world.topic, world.batch(oversold, unknown, twice, twice.model_copy()))
    assert ack is not None
    assert ack["applied"] == 4
    assert await world.count("purchases", id=oversold.purchase_id) == 1  # recorded: the passenger has it
    assert await world.value("store_items", "balance", world.tea) == 0  # not below zero
    assert await world.count("purchases", id=unknown.purchase_id) == 0
    for kind in ("oversold", "unknown_item", "ticket_used_twice"):
        assert await world.count("sync_conflicts", kind=kind) == 1, kind


async def test_what_does_not_verify_is_dead_lettered_and_not_acked(world: World) -> None:
    good = world.batch(purchase(world, (world.cake, 1)))
    forged = world.batch(purchase(world, (world.cake, 1)), key=Ed25519PrivateKey.generate())
    stranger = f"railbot/v1/robots/{uuid.uuid4()}/up/batch"
    cases = [
        (world.topic, forged, "unknown_key"),
        (stranger, good, "unknown_robot"),
        (world.topic, b"\x00garbage", "malformed"),
        (world.topic, good[:-10], "malformed"),  # truncated
        (world.topic, b"\xa0" * (MAX_BATCH_BYTES + 1), "oversized"),
        ("railbot/v1/robots/not-a-uuid/up/batch", good, "bad_topic"),
    ]
    for topic, payload, reason in cases:
        before = await world.count("sync_dead_letters", reason=reason)
        assert await world.ingest.handle(topic, payload) is None, reason
        assert await world.count("sync_dead_letters", reason=reason) == before + 1, reason
    assert await world.count("purchases") == 0
    assert await world.count("sync_applied_events") == 0


async def test_events_that_do_not_fit_their_type_dead_letter_the_batch_with_an_ack(world: World) -> None:
    bad = BatchEvent(uuid.uuid4(), 1, "purchase", 1, 1, uuid.UUID(int=1), cbor2.dumps({"purchase_id": "x"}))
    payload = encode_batch(world.robot, uuid.UUID(int=9), 1, [bad], world.key)
    ack = await world.ingest.handle(world.topic, payload)
    assert ack is not None
    assert ack["status"] == "dead_letter"
    assert ack["batch"] == str(uuid.UUID(int=9))
    assert "event 1" in ack["reason"]
    assert await world.count("sync_dead_letters", reason="bad_event") == 1
    assert await world.count("sync_applied_events") == 0


async def test_a_robot_clock_hours_off_loses_nothing_and_its_skew_is_recorded(world: World) -> None:
    """Fault 8: the robot's wall clock is three hours behind. Order comes from seq, uniqueness from ids; the
    skew is measured against the cloud's clock and kept for the operator."""
    hours_behind = 3 * 3600 * 1000
    now_ms = int(utcnow().timestamp() * 1000)
    events = []
    for n in range(1, 4):
        kind, values = event_payload(purchase(world, (world.cake, 1)))
        events.append(
            BatchEvent(uuid.uuid4(), n, kind, now_ms - hours_behind, n, uuid.UUID(int=1), cbor2.dumps(values))
        )
    payload = encode_batch(world.robot, uuid.uuid4(), now_ms - hours_behind, events, world.key)
    ack = await world.ingest.handle(world.topic, payload)
    assert ack is not None
    assert ack["applied"] == 3
    state = CLOUD_METADATA.tables["sync_robot_state"]
    async with world.engine.connect() as conn:
        row = (await conn.execute(select(state.c.last_seq, state.c.clock_skew_ms))).one()
    assert row.last_seq == 3
    assert abs(row.clock_skew_ms - hours_behind) < 60_000
