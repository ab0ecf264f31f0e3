"""Ingest on SQLite and PostgreSQL: a robot's signed batch applied exactly once, conflicts recorded, and
everything that does not verify dead-lettered without touching the seed's tables."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_sync.db import changes as cloud_changes
from cloud_sync.db.database import create_engine
from cloud_sync.db.tables import CLOUD_METADATA, Role
from cloud_sync.sync import gaps
from cloud_sync.sync.ingest import Ingest
from cloud_sync.web.app import create_app
from cloud_sync.web.auth import create_token
from cloud_sync.web.context import CONTEXT
from models.base_server import BASE_METADATA
from models.columns import utcnow
from models.store_api import PurchaseLine
from models.store_server import STORE_METADATA
from models.sync_batch import MAX_BATCH_BYTES, BatchEvent, encode_batch
from models.sync_changes import REPLICATED, Change, Changes, decode_changes, encode_changes
from models.sync_events import (
    EngineerAction,
    EventData,
    PurchaseMade,
    TaskUpdated,
    TicketChecked,
    event_payload,
)

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

    def events(self, *data: EventData) -> list[BatchEvent]:
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
        return events

    def signed(self, events: list[BatchEvent], sent_ms: int = 1_796_000_000_000) -> bytes:
        return encode_batch(self.robot, uuid.uuid4(), sent_ms, events, self.key)

    def batch(
        self, *data: EventData, key: Ed25519PrivateKey | None = None, batch_id: uuid.UUID | None = None
    ) -> bytes:
        events = self.events(*data)
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
    ingest = Ingest(engine)
    yield World(engine, ingest, ids["robot"], key, ids["store"], ids["tea"], ids["cake"], ids["ticket"])
    await ingest.close()
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
    assert (first.status, first.applied, first.skipped) == ("committed", 2, 0)
    again = await world.ingest.handle(world.topic, payload)  # the ack was lost: the robot sent it again
    assert again is not None
    assert (again.status, again.applied, again.skipped) == ("committed", 0, 2)
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
    assert ack.applied == 4
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
    assert ack.status == "dead_letter"
    assert ack.batch == uuid.UUID(int=9)
    assert "event 1" in ack.reason
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
    assert ack.applied == 3
    state = CLOUD_METADATA.tables["sync_robot_state"]
    async with world.engine.connect() as conn:
        row = (await conn.execute(select(state.c.last_seq, state.c.clock_skew_ms))).one()
    assert row.last_seq == 3
    assert abs(row.clock_skew_ms - hours_behind) < 60_000


async def test_an_event_id_twice_in_a_batch_or_in_a_group_is_applied_once(world: World) -> None:
    first, second, third = world.events(*(purchase(world, (world.cake, 1)) for _ in range(3)))
    twice_in_one = world.signed([first, second, first])
    again_in_the_next = world.signed([second, third])
    forged = encode_batch(world.robot, uuid.uuid4(), 1, [third], Ed25519PrivateKey.generate())
    acks = await world.ingest.handle_group(
        [(world.topic, twice_in_one), (world.topic, forged), (world.topic, again_in_the_next)]
    )
    assert acks[1] is None  # dead-lettered, not acked, and the others committed with it
    assert acks[0] is not None
    assert acks[2] is not None
    assert (acks[0].applied, acks[0].skipped, acks[0].first_seq, acks[0].last_seq) == (2, 1, 1, 1)
    assert (acks[2].applied, acks[2].skipped) == (1, 1)
    assert await world.count("purchases") == 3
    assert await world.count("tasks") == 3
    assert await world.count("sync_applied_events") == 3
    assert await world.count("sync_dead_letters", reason="unknown_key") == 1


async def test_two_workers_applying_the_same_batches_at_once_apply_each_event_once(
    world: World, cloud_db_url: str
) -> None:
    """Two ingest workers (two engines, two connections) get the same batches at the same moment, as a
    resend after a lost ack can arrange: each event is applied by exactly one of them."""
    bought = [purchase(world, (world.tea, 1)) for _ in range(4)] + [
        purchase(world, (world.cake, 1)) for _ in range(200)
    ]
    payloads = [world.signed(world.events(*bought[n : n + 51])) for n in range(0, len(bought), 51)]
    other_engine = create_engine(cloud_db_url)
    other = Ingest(other_engine)
    try:
        mine, theirs = await asyncio.gather(
            world.ingest.handle_group([(world.topic, p) for p in payloads]),
            other.handle_group([(world.topic, p) for p in reversed(payloads)]),
        )
    finally:
        await other.close()
        await other_engine.dispose()
    acks = [ack for ack in [*mine, *theirs] if ack is not None]
    assert len(acks) == 2 * len(payloads)
    assert all(ack.status == "committed" for ack in acks)
    assert sum(ack.applied or 0 for ack in acks) == len(bought)
    assert sum(ack.skipped or 0 for ack in acks) == len(bought)
    assert await world.count("purchases") == len(bought)
    assert await world.count("tasks") == len(bought)
    assert await world.count("sync_applied_events") == len(bought)
    assert await world.value("store_items", "balance", world.tea) == 0  # 3 in stock, 4 sold
    assert await world.count("sync_conflicts", kind="oversold") == 1


async def test_tickets_and_tasks_the_cloud_does_not_know_are_conflicts(world: World) -> None:
    bought = purchase(world, (world.cake, 1))
    await world.ingest.handle(world.topic, world.batch(bought))
    tasks = T["tasks"]
    async with world.engine.connect() as conn:
        task = (await conn.execute(select(tasks.c.id).where(tasks.c.purchase_id == bought.purchase_id))).one()
    stranger = uuid.uuid4()
    ack = await world.ingest.handle(
        world.topic,
        world.batch(
            TaskUpdated(task_id=task.id, is_ready=False, at=AT),
            TaskUpdated(task_id=stranger, is_ready=True, at=AT),
            TicketChecked(ticket_id=stranger, verdict="valid", train_number=742, at=AT),
            TicketChecked(ticket_id=world.ticket, verdict="expired", train_number=742, at=AT),
            EngineerAction(engineer_id=uuid.uuid4(), action="login", at=AT),
        ),
    )
    assert ack is not None
    assert (ack.applied, ack.skipped) == (5, 0)
    assert await world.value("tasks", "is_ready", task.id) is False
    assert await world.value("tickets", "used", world.ticket) is False  # a refusal changes nothing
    assert await world.count("sync_conflicts", kind="unknown_task") == 1
    assert await world.count("sync_conflicts", kind="unknown_ticket") == 1
    assert await world.count("sync_applied_events", type="engineer_action") == 1


async def test_a_late_batch_does_not_move_the_robots_last_seq_back(world: World) -> None:
    early = world.events(purchase(world, (world.cake, 1)))
    late = world.events(purchase(world, (world.cake, 1)))
    assert await world.ingest.handle(world.topic, world.signed(late)) is not None
    assert await world.ingest.handle(world.topic, world.signed(early)) is not None
    state = CLOUD_METADATA.tables["sync_robot_state"]
    async with world.engine.connect() as conn:
        assert (await conn.execute(select(state.c.last_seq))).scalar_one() == late[0].seq


async def test_what_ingest_changes_that_robots_copy_goes_to_the_change_log(world: World) -> None:
    """A ticket used and an item's stock reach the other robots on the train (docs/sync.md, "Down-sync")."""
    async with world.engine.begin() as conn:
        await conn.execute(
            insert(T["train_stores"]).values(
                id=uuid.uuid4(), store_id=world.store, train_number=742, train_date=AT
            )
        )
    checked = TicketChecked(ticket_id=world.ticket, verdict="valid", train_number=742, at=AT)
    ack = await world.ingest.handle(
        world.topic, world.batch(purchase(world, (world.tea, 2), (world.cake, 1)), checked)
    )
    assert ack is not None
    assert ack.status == "committed"
    changes = T["sync_changes"]
    async with world.engine.connect() as conn:
        logged = (
            await conn.execute(
                select(changes.c.scope, changes.c.table_name, changes.c.row_key, changes.c.value)
            )
        ).all()
    entries = {(scope, table, key): value for scope, table, key, value in logged}
    ticket = entries[("train:742", "tickets", str(world.ticket))]
    assert ticket["used"] is True
    assert set(ticket) == set(REPLICATED["tickets"].columns)
    tea = entries[("train:742", "store_items", str(world.tea))]
    assert tea["balance"] == 1
    assert set(tea) == set(REPLICATED["store_items"].columns)
    assert ("train:742", "store_items", str(world.cake)) not in entries, "an uncounted stock did not change"
    # The robot's side takes these values as they are.
    decode_changes(
        encode_changes(
            Changes(
                "train:742",
                "log",
                0,
                9,
                tuple(Change(1, t, "upsert", k, v) for (_, t, k), v in entries.items()),
            )
        )
    )


async def test_a_robots_sale_s_task_goes_down_to_it(world: World) -> None:
    """The task of a robot's purchase is logged in that robot's scope, naming the robot and the stock conflict
    the sale met (issue 16, selling); the robot's own `task_update` logs it again, and a snapshot of the
    robot's scope holds it."""
    sale = purchase(world, (world.tea, 5))  # 3 in stock: oversold, recorded all the same
    ack = await world.ingest.handle(world.topic, world.batch(sale))
    assert ack is not None
    assert ack.status == "committed"
    scope = f"robot:{world.robot}"
    changes_ = T["sync_changes"]

    async def logged() -> list[dict[str, Any]]:
        async with world.engine.connect() as conn:
            rows = await conn.execute(
                select(changes_.c.value)
                .where(changes_.c.scope == scope, changes_.c.table_name == "tasks")
                .order_by(changes_.c.change_id)
            )
            return [row.value for row in rows]

    [task] = await logged()
    assert set(task) == set(REPLICATED["tasks"].columns)
    assert task["purchase_id"] == str(sale.purchase_id)
    assert task["is_ready"] is True  # the purchase's is_default_ready
    extra = task["additional_data"]
    assert extra["robot_id"] == str(world.robot)
    assert [c["kind"] for c in extra["conflicts"]] == ["oversold"]
    assert str(world.tea) in extra["conflicts"][0]["detail"]

    moved = TaskUpdated(task_id=uuid.UUID(task["id"]), is_ready=False, at=AT)
    ack = await world.ingest.handle(world.topic, world.batch(moved))
    assert ack is not None
    assert ack.status == "committed"
    assert [t["is_ready"] for t in await logged()] == [True, False]
    async with world.engine.connect() as conn:
        snap = await conn.run_sync(cloud_changes.snapshot, scope)
    [copied] = [c for c in snap if c.table == "tasks"]
    assert copied.key == task["id"]
    assert copied.value is not None
    assert copied.value["is_ready"] is False
    async with world.engine.connect() as conn:
        other = await conn.run_sync(cloud_changes.snapshot, f"robot:{uuid.uuid4()}")
    assert [c for c in other if c.table == "tasks"] == [], "another robot gets none of it"


def numbered(world: World, seqs: range) -> bytes:
    """A signed batch of purchases with these sequence numbers."""
    events = []
    for seq in seqs:
        kind, values = event_payload(purchase(world, (world.cake, 1)))
        events.append(
            BatchEvent(uuid.uuid4(), seq, kind, 1_796_000_000_000, seq, uuid.UUID(int=1), cbor2.dumps(values))
        )
    return encode_batch(world.robot, uuid.uuid4(), 1_796_000_000_000, events, world.key)


async def gaps_of(world: World) -> list[tuple[int, int, list[list[int]]]]:
    async with world.engine.connect() as conn:
        report = await gaps.report(conn)
    return [
        (robot.last_seq, robot.missing, robot.gaps)
        for robot in report.robots
        if robot.robot_id == world.robot
    ]


async def test_a_gap_in_a_robots_seqs_is_reported_until_its_events_arrive(
    world: World, cloud_db_url: str, tmp_path: Path
) -> None:
    for seqs in (range(1, 11), range(15, 21), range(15, 21)):  # the second 15-20 is a resend
        ack = await world.ingest.handle(world.topic, numbered(world, seqs))
        assert ack is not None
        assert ack.status == "committed"
    assert await gaps_of(world) == [(20, 4, [[11, 14]])]

    # The operator's views: the admin endpoint and the command.
    app = create_app(cloud_db_url, tmp_path / "keys")
    async with TestClient(TestServer(app)) as client:
        async with app[CONTEXT].sessions() as session:
            admin = await create_token(session, Role.ADMIN)
        response = await client.get("/base_api/admin/sync/gaps", headers={"Authorization": f"Bearer {admin}"})
        assert (response.status, await response.json()) == (
            200,
            {"robots": [{"robot_id": str(world.robot), "last_seq": 20, "missing": 4, "gaps": [[11, 14]]}]},
        )
        assert (await client.get("/base_api/admin/sync/gaps")).status == 401
    command = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "cloud-sync"), "sync", "gaps", "--db", cloud_db_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(command.communicate(), 60)
    assert command.returncode == 0, err.decode()
    assert out.decode().splitlines()[1].split() == [str(world.robot), "20", "4", "11-14"]

    ack = await world.ingest.handle(world.topic, numbered(world, range(11, 15)))
    assert ack is not None
    assert ack.applied == 4
    assert await gaps_of(world) == [(20, 0, [])]
    async with world.engine.connect() as conn:  # merged as it goes: one run, one row
        rows = (await conn.execute(select(T["sync_seq_ranges"]))).all()
    assert [(row.first_seq, row.last_seq) for row in rows] == [(1, 20)]


async def test_batches_out_of_order_in_one_group_and_dead_lettered_ones_count_as_arrived(
    world: World,
) -> None:
    acks = await world.ingest.handle_group(
        [(world.topic, numbered(world, range(31, 36))), (world.topic, numbered(world, range(1, 4)))]
    )
    assert [ack.status for ack in acks if ack is not None] == ["committed", "committed"]
    assert await gaps_of(world) == [(35, 27, [[4, 30]])]
    # A batch the robot sent whose event does not fit its type: the robot sets it aside on the dead-letter
    # ack and will never send it again, so its seqs arrived.
    bad = BatchEvent(uuid.uuid4(), 4, "purchase", 1, 1, uuid.UUID(int=1), cbor2.dumps({"purchase_id": "x"}))
    also = BatchEvent(uuid.uuid4(), 5, "purchase", 1, 1, uuid.UUID(int=1), cbor2.dumps({"purchase_id": "x"}))
    ack = await world.ingest.handle(
        world.topic, encode_batch(world.robot, uuid.uuid4(), 1, [bad, also], world.key)
    )
    assert ack is not None
    assert ack.status == "dead_letter"
    assert await gaps_of(world) == [(35, 25, [[6, 30]])]
    # A forged batch is not the robot's: what it claims proves nothing.
    forged = numbered(world, range(6, 31))
    assert await world.ingest.handle(world.topic, forged.replace(forged[-5:], b"\0" * 5)) is None
    assert await gaps_of(world) == [(35, 25, [[6, 30]])]


async def test_two_workers_taking_turns_on_one_robots_batches_leave_no_false_gap(
    world: World, cloud_db_url: str
) -> None:
    """The shared subscription hands one robot's batches to two workers at once: each merges the robot's runs
    with what the other just wrote, so none is lost and no gap appears that is not one. One worker gets only
    batches it dead-letters, whose transactions write nothing else about the robot."""
    refused = cbor2.dumps({"purchase_id": "x"})
    payloads = [
        numbered(world, range(n, n + 20))
        if n % 40 == 1
        else encode_batch(
            world.robot,
            uuid.uuid4(),
            1,
            [
                BatchEvent(uuid.uuid4(), seq, "purchase", 1, 1, uuid.UUID(int=1), refused)
                for seq in range(n, n + 20)
            ],
            world.key,
        )
        for n in range(1, 801, 20)
    ]
    other_engine = create_engine(cloud_db_url)
    other = Ingest(other_engine)

    async def work(ingest: Ingest, mine: list[bytes]) -> None:
        for payload in mine:
            await ingest.handle(world.topic, payload)

    try:
        await asyncio.gather(work(world.ingest, payloads[0::2]), work(other, payloads[1::2]))
    finally:
        await other.close()
        await other_engine.dispose()
    assert await gaps_of(world) == [(800, 0, [])]
    async with world.engine.connect() as conn:
        rows = (await conn.execute(select(T["sync_seq_ranges"]))).all()
    assert [(row.first_seq, row.last_seq) for row in rows] == [(1, 800)]
