"""What the robot does is recorded in its own table and its outbox together, or not at all."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from models.columns import utcnow
from models.store_api import PurchaseLine
from models.sync_changes import Change, Changes
from models.sync_events import EngineerAction, PurchaseMade, TaskUpdated, TicketChecked
from robot_agent.clock import Clock
from robot_agent.store import activity, outbox, replica
from robot_agent.store.database import open_store
from robot_agent.store.tables import ROBOT_METADATA

COUNTED, UNCOUNTED = uuid.uuid4(), uuid.uuid4()


def rows(store: Engine, table: str) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ROBOT_METADATA.tables[table])).scalar_one())


def test_each_kind_of_event_lands_in_its_table_and_the_outbox_with_one_seq(tmp_path: Path) -> None:
    store, clock = open_store(tmp_path / "robot.db"), Clock()
    items = ROBOT_METADATA.tables["store_items"]
    store_id = uuid.uuid4()
    with store.begin() as conn:
        common = {
            "store_id": store_id,
            "name": "Tea",
            "description": "",
            "price_penny": 100,
            "sync_scope": "train:1",
        }
        conn.execute(
            insert(items),
            [{**common, "id": COUNTED, "balance": 2}, {**common, "id": UNCOUNTED, "balance": None}],
        )
        sale = PurchaseMade(
            purchase_id=uuid.uuid4(),
            store_id=store_id,
            user_id=uuid.uuid4(),
            items=[
                PurchaseLine(item_id=COUNTED, count=2),
                PurchaseLine(item_id=COUNTED, count=1),
                PurchaseLine(item_id=UNCOUNTED, count=5),
            ],
            at=utcnow(),
        )
        seqs = [
            activity.record(conn, sale, clock),
            activity.record(
                conn,
                TicketChecked(ticket_id=None, verdict="bad_signature", train_number=742, at=utcnow()),
                clock,
            ),
            activity.record(conn, TaskUpdated(task_id=uuid.uuid4(), is_ready=True, at=utcnow()), clock),
            activity.record(
                conn, EngineerAction(engineer_id=uuid.uuid4(), action="login", at=utcnow()), clock
            ),
        ]
        balances = dict(conn.execute(select(items.c.id, items.c.balance)).all())
    assert seqs == sorted(seqs)
    for table in ("purchases", "ticket_checks", "task_deliveries", "engineer_actions"):
        assert rows(store, table) == 1, table
    assert rows(store, "purchase_items") == 2, "lines of one item are one line"
    assert balances == {COUNTED: 0, UNCOUNTED: None}, "a counted stock never goes below zero"
    with store.connect() as conn:
        assert outbox.backlog(conn, clock).events == 4


def test_a_change_that_fails_leaves_no_event_behind(tmp_path: Path) -> None:
    store, clock = open_store(tmp_path / "robot.db"), Clock()
    sale = PurchaseMade(
        purchase_id=uuid.uuid4(),
        store_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        items=[PurchaseLine(item_id=COUNTED, count=1)],
        at=utcnow(),
    )
    with store.begin() as conn:
        activity.record(conn, sale, clock)
    with pytest.raises(IntegrityError), store.begin() as conn:
        activity.record(conn, sale, clock)  # the same purchase again: refused, and its event with it
    assert rows(store, "purchases") == 1
    assert rows(store, "outbox") == 1


def test_the_clouds_stock_of_an_item_does_not_undo_sales_still_in_the_outbox(tmp_path: Path) -> None:
    store, clock = open_store(tmp_path / "robot.db"), Clock()
    store_id = uuid.uuid4()

    def cloud_says(balance: int, change_id: int) -> None:
        value = {
            "id": str(COUNTED),
            "store_id": str(store_id),
            "name": "Tea",
            "description": "",
            "logo_url": None,
            "balance": balance,
            "price_penny": 100,
            "category": None,
        }
        change = Change(change_id, "store_items", "upsert", str(COUNTED), value)
        with store.begin() as conn:
            replica.apply_log(conn, Changes("train:1", "log", change_id - 1, change_id, (change,)))

    def balance() -> int:
        items = ROBOT_METADATA.tables["store_items"]
        with store.connect() as conn:
            return int(conn.execute(select(items.c.balance).where(items.c.id == COUNTED)).scalar_one())

    cloud_says(10, 1)
    sale = PurchaseMade(
        purchase_id=uuid.uuid4(),
        store_id=store_id,
        user_id=uuid.uuid4(),
        items=[PurchaseLine(item_id=COUNTED, count=3)],
        at=utcnow(),
    )
    with store.begin() as conn:
        activity.record(conn, sale, clock)
    assert balance() == 7
    cloud_says(10, 2)  # the cloud has not had the sale yet
    assert balance() == 7, "the robot's own unsent sale still counts"
    with store.begin() as conn:
        batch = outbox.take_batch(conn)
        assert batch is not None
        outbox.acknowledge(conn, batch.id)
    cloud_says(7, 3)  # now it has
    assert balance() == 7
