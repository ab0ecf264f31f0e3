"""An order placed by an engineer for a passenger: a purchase made offline, as the robot's own sales are.

It is checked against the robot's copies of the stores and their items (each item of that store; a counted
stock must hold the count) and recorded with its `purchase` outbox event in one transaction
(store/activity.py), which also takes the count off the robot's copy of the stock. The order waits in a
compartment (the one asked for, or the lowest free) until handed over (robot_agent/selling.py). The cloud's
stock rules apply when the event lands: a conflict comes back in the order's task, down-synced to the robot.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Engine, select
from uuid_utils.compat import uuid7

from hardware.devices import COMPARTMENTS
from models.store_api import PurchaseLine
from models.sync_events import PurchaseMade
from robot_agent import selling
from robot_agent.clock import Clock
from robot_agent.errors import RobotAgentError
from robot_agent.store import activity
from robot_agent.store.tables import ReplicaStore, ReplicaStoreItem

_STORES = ReplicaStore.__table__  # type: ignore[attr-defined]
_ITEMS = ReplicaStoreItem.__table__  # type: ignore[attr-defined]


class OrderRefused(RobotAgentError):
    """The order cannot be placed; `status` is the HTTP status that says why (404 unknown, 409 stock)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def place_order(
    store: Engine,
    clock: Clock,
    store_id: uuid.UUID,
    user_id: uuid.UUID,
    lines: list[PurchaseLine],
    at: dt.datetime,
    compartment: int | None = None,
) -> tuple[uuid.UUID, int, int]:
    """Record the purchase, kept in `compartment` (or the lowest free one); returns its id, outbox seq and
    compartment, or raises `OrderRefused`."""
    wanted: dict[uuid.UUID, int] = {}
    for line in lines:
        wanted[line.item_id] = wanted.get(line.item_id, 0) + line.count
    with store.begin() as conn:
        if conn.execute(select(_STORES.c.id).where(_STORES.c.id == store_id)).first() is None:
            raise OrderRefused(404, f"store {store_id} is not known to this robot")
        rows = {
            row.id: row
            for row in conn.execute(
                select(_ITEMS.c.id, _ITEMS.c.store_id, _ITEMS.c.balance).where(_ITEMS.c.id.in_(wanted))
            )
        }
        for item_id, count in wanted.items():
            row = rows.get(item_id)
            if row is None or row.store_id != store_id:
                raise OrderRefused(404, f"item {item_id} is not sold by store {store_id}")
            if row.balance is not None and row.balance < count:
                raise OrderRefused(409, f"item {item_id}: {row.balance} left, {count} asked")
        taken = selling.occupied(conn)
        if compartment is None:
            free = [n for n in range(COMPARTMENTS) if n not in taken]
            if not free:
                raise OrderRefused(409, "every compartment holds an order not yet handed over")
            compartment = free[0]
        elif compartment in taken:
            raise OrderRefused(409, f"compartment {compartment} holds an order not yet handed over")
        purchase_id = uuid7()
        seq = activity.record(
            conn,
            PurchaseMade(
                purchase_id=purchase_id,
                store_id=store_id,
                user_id=user_id,
                items=[PurchaseLine(item_id=i, count=n) for i, n in wanted.items()],
                at=at,
            ),
            clock,
            compartment=compartment,
        )
    return purchase_id, seq, compartment
