"""Selling on a real robot store and the real ticket desk: an order placed offline waits in a compartment;
its task comes down (ready or not, with the stock conflicts the cloud found); a passenger who shows their
ticket again once it is ready gets the compartment opened, and the delivery is recorded with its `task_update`
outbox event, once."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from hardware.devices import COMPARTMENTS
from hardware.factory import open_devices
from models.store_api import PurchaseLine
from models.tickets import decode_ticket
from robot_agent import selling
from robot_agent.api.orders import OrderRefused, place_order
from robot_agent.behaviour.configured import open_behaviour
from robot_agent.behaviour.events import ReadyOrder
from robot_agent.behaviour.speaker import SimSpeaker
from robot_agent.clock import Clock
from robot_agent.config import RobotConfig
from robot_agent.live import LiveEvents
from robot_agent.store import outbox
from robot_agent.store.database import open_store
from robot_agent.tickets import CheckMethod, TicketDesk
from tests.integration.test_ticket_desk import NOW, SIGNER, cloud_says, signing_key_row, ticket, write_config

STORE = uuid.UUID(int=100)
TEA = uuid.UUID(int=101)
ROBOT = uuid.UUID(int=900)
AT = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def stocked(store: Engine) -> None:
    cloud_says(
        store,
        "train:742",
        (
            "stores",
            str(STORE),
            {"id": str(STORE), "name": "Buffet", "description": "", "logo_url": "", "store_type": "SHOP"},
        ),
        (
            "store_items",
            str(TEA),
            {
                "id": str(TEA),
                "store_id": str(STORE),
                "name": "Tea",
                "description": "",
                "logo_url": None,
                "balance": 50,
                "price_penny": 9000,
                "category": None,
            },
        ),
    )


def task_row(task: uuid.UUID, purchase: uuid.UUID, user: uuid.UUID, *, ready: bool) -> dict[str, Any]:
    """The task as ingest makes it and down-sync brings it, in the robot's scope."""
    return {
        "id": str(task),
        "store_id": str(STORE),
        "user_id": str(user),
        "purchase_id": str(purchase),
        "is_ready": ready,
        "additional_data": {"robot_id": str(ROBOT), "conflicts": []},
    }


def order(store: Engine, user: uuid.UUID, compartment: int | None = None) -> tuple[uuid.UUID, int]:
    purchase, _, kept = place_order(
        store, Clock(), STORE, user, [PurchaseLine(item_id=TEA, count=1)], AT, compartment
    )
    return purchase, kept


def test_orders_take_the_lowest_free_compartment_until_handed_over(tmp_path: Path) -> None:
    store = open_store(tmp_path / "robot.db")
    stocked(store)
    user = uuid.uuid4()
    first, kept = order(store, user)
    assert kept == 0
    assert order(store, user)[1] == 1
    with pytest.raises(OrderRefused, match="compartment 1 holds") as refused:
        order(store, user, compartment=1)
    assert refused.value.status == 409
    for n in range(2, COMPARTMENTS):
        assert order(store, user)[1] == n
    with pytest.raises(OrderRefused, match="every compartment"):
        order(store, user)
    task = uuid.uuid4()
    cloud_says(store, f"robot:{ROBOT}", ("tasks", str(task), task_row(task, first, user, ready=True)))
    with store.begin() as conn:
        assert selling.record_delivery(conn, ReadyOrder(task, first, 0), AT, Clock()) is not None
    assert order(store, user)[1] == 0, "handed over: its compartment is free again"


async def test_a_ready_order_opens_its_compartment_when_the_passenger_shows_the_ticket_again(
    tmp_path: Path,
) -> None:
    config: RobotConfig = write_config(tmp_path, '[behaviour]\nlanguage = "en"\n')
    store = open_store(config.storage.database)
    cloud_says(store, "all", signing_key_row(SIGNER, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    ticket_id, token = ticket()
    claims = decode_ticket(token).claims
    row = {
        "id": str(ticket_id),
        "user_id": str(claims.user_id),
        "train_number": claims.train_number,
        "wagon_number": claims.wagon_number,
        "place_number": claims.place_number,
        "date": claims.date.isoformat(),
        "station_id": claims.station_id,
        "destination_id": claims.destination_id,
        "start_date": claims.start_date.isoformat(),
        "code": claims.code,
        "used": False,
    }
    cloud_says(store, "train:742", ("tickets", str(ticket_id), row))
    stocked(store)
    purchase, compartment = order(store, claims.user_id, compartment=5)
    desk = TicketDesk(store, config)
    devices = await open_devices("simulated", None, 115200)
    live = LiveEvents()
    speaker = SimSpeaker(live)
    driver = open_behaviour(config, devices, store, live=live, speaker=speaker)
    sim = devices.simulator
    assert sim is not None

    def show() -> None:
        driver.on_outcome(desk.check(token, CheckMethod.CAMERA, NOW))

    def unlocked() -> list[dict[str, int]]:
        return [values for _, call, values in sim.commands if call == "compartments.unlock"]

    show()  # let in; the order is not ready yet: nothing opens
    await driver.handle(await driver._queue.get())
    task = uuid.uuid4()
    scope = f"robot:{ROBOT}"
    cloud_says(store, scope, ("tasks", str(task), task_row(task, purchase, claims.user_id, ready=False)))
    show()  # back too early: the ticket is used and the order not ready, so refused as before
    await driver.handle(await driver._queue.get())
    assert unlocked() == []

    cloud_says(store, scope, ("tasks", str(task), task_row(task, purchase, claims.user_id, ready=True)))
    show()  # back once it is ready: the compartment opens, the delivery is recorded
    await driver.handle(await driver._queue.get())
    assert unlocked() == [{"index": compartment, "ms": 10_000}]
    assert speaker.said[-1].text == "Your order is ready: take it from compartment 6."
    assert [e.data for e in live.recent() if e.kind == "order"] == [
        {"state": "delivered", "task_id": str(task), "purchase_id": str(purchase), "compartment": 5}
    ]
    with store.begin() as conn:
        batch = outbox.take_batch(conn)
        assert selling.ready_order(conn, ticket_id) is None
        assert compartment not in selling.occupied(conn)
    assert batch is not None
    sent = [outbox.decode_data(event) for event in batch.events if event.type == "task_update"]
    assert len(sent) == 1
    assert sent[0]["task_id"] == task
    assert sent[0]["is_ready"] is True

    show()  # shown once more: handed over already, nothing opens again
    await driver.handle(await driver._queue.get())
    assert len(unlocked()) == 1
    await devices.close()
