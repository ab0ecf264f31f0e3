"""Selling's side in the robot's store: which compartment holds which order, which order is ready for a
passenger, and the delivery recorded.

An order (robot_agent/api/orders.py) is put in a compartment when it is placed (`purchases.compartment`). The
cloud's task for it comes down in the robot's own scope (`tasks`, models/sync_changes.py): ready once the
store marks it so, with the stock conflicts its sale met in `additional_data`. A passenger who identifies
again (their ticket valid, or already used: they were let in before) and has a ready order not yet handed
over gets its compartment opened by the behaviour, which then records the delivery: a `task_update` event in
the outbox and the robot's `task_deliveries` row, one transaction (store/activity.py). A compartment is free
again once its order is delivered. Blocking calls: the behaviour's driver runs them off the event loop.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Connection, Engine, exists, select

from models.sync_events import TaskUpdated
from robot_agent.behaviour.events import ReadyOrder
from robot_agent.clock import Clock
from robot_agent.store import activity, replica
from robot_agent.store.tables import RobotPurchase, TaskDelivery

_PURCHASES = RobotPurchase.__table__  # type: ignore[attr-defined]
_DELIVERIES = TaskDelivery.__table__  # type: ignore[attr-defined]


def _undelivered() -> Any:
    """Purchases whose task has not been handed over (a purchase with no task yet is not delivered)."""
    tasks = replica.table("tasks")
    handed = (
        select(tasks.c.id)
        .where(tasks.c.purchase_id == _PURCHASES.c.id)
        .where(exists().where(_DELIVERIES.c.task_id == tasks.c.id))
    )
    return ~exists(handed)


def occupied(conn: Connection) -> set[int]:
    """The compartments holding an order not yet handed over."""
    query = select(_PURCHASES.c.compartment).where(_PURCHASES.c.compartment.is_not(None), _undelivered())
    return set(conn.execute(query).scalars())


def ready_order(conn: Connection, ticket_id: uuid.UUID) -> ReadyOrder | None:
    """The oldest order of the ticket's passenger that the store has marked ready, that this robot holds in a
    compartment and has not handed over; None if there is none (or the robot holds no copy of the ticket)."""
    tickets, tasks = replica.table("tickets"), replica.table("tasks")
    user = conn.execute(select(tickets.c.user_id).where(tickets.c.id == ticket_id)).scalar()
    if user is None:
        return None
    query = (
        select(tasks.c.id, _PURCHASES.c.id.label("purchase_id"), _PURCHASES.c.compartment)
        .join(_PURCHASES, _PURCHASES.c.id == tasks.c.purchase_id)
        .where(
            tasks.c.user_id == user,
            tasks.c.is_ready.is_(True),
            _PURCHASES.c.compartment.is_not(None),
            ~exists().where(_DELIVERIES.c.task_id == tasks.c.id),
        )
        .order_by(_PURCHASES.c.at, _PURCHASES.c.id)
        .limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else ReadyOrder(row.id, row.purchase_id, row.compartment)


def record_delivery(conn: Connection, order: ReadyOrder, at: dt.datetime, clock: Clock) -> int | None:
    """Record that `order` was handed over: its `task_update` event (the task stays ready: the seed's task
    has no "delivered"; the event itself, kept by the cloud, is the record) with the robot's own row, in the
    caller's transaction. None, recording nothing, if it was recorded before."""
    if conn.execute(select(_DELIVERIES.c.seq).where(_DELIVERIES.c.task_id == order.task_id)).first():
        return None
    return activity.record(conn, TaskUpdated(task_id=order.task_id, is_ready=True, at=at), clock)


def orders(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The robot's latest orders, newest first, JSON-ready: each with its compartment, its task once it has
    come down, its state ("placed": the cloud's task not here yet; "waiting": the store is making it;
    "ready"; "delivered") and the conflicts the cloud found with its sale."""
    tasks = replica.table("tasks")
    delivered = exists().where(_DELIVERIES.c.task_id == tasks.c.id)
    query = (
        select(
            _PURCHASES.c.id,
            _PURCHASES.c.store_id,
            _PURCHASES.c.user_id,
            _PURCHASES.c.at,
            _PURCHASES.c.compartment,
            tasks.c.id.label("task_id"),
            tasks.c.is_ready,
            tasks.c.additional_data,
            delivered.label("delivered"),
        )
        .outerjoin(tasks, tasks.c.purchase_id == _PURCHASES.c.id)
        .order_by(_PURCHASES.c.at.desc(), _PURCHASES.c.id.desc())
        .limit(limit)
    )
    found = []
    for row in conn.execute(query):
        if row.task_id is None:
            state = "placed"
        elif row.delivered:
            state = "delivered"
        else:
            state = "ready" if row.is_ready else "waiting"
        extra = row.additional_data if isinstance(row.additional_data, dict) else {}
        found.append(
            {
                "purchase_id": str(row.id),
                "store_id": str(row.store_id),
                "user_id": str(row.user_id),
                "at": row.at.isoformat(),
                "compartment": row.compartment,
                "task_id": None if row.task_id is None else str(row.task_id),
                "state": state,
                "conflicts": list(extra.get("conflicts", [])),
            }
        )
    return found


class OrderLookup:
    """`ready_order` on the robot's store, one short read a call (the driver's `order_of`)."""

    def __init__(self, store: Engine) -> None:
        self.store = store

    def __call__(self, ticket_id: uuid.UUID) -> ReadyOrder | None:
        with self.store.connect() as conn:
            return ready_order(conn, ticket_id)


class Deliveries:
    """`record_delivery` in a transaction of its own, stamped by the robot's clock (the driver's
    `delivered`); True when it recorded it now."""

    def __init__(self, store: Engine, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def __call__(self, order: ReadyOrder) -> bool:
        with self.store.begin() as conn:
            at = dt.datetime.fromtimestamp(self.clock.wall_ms() / 1000, dt.UTC)
            return record_delivery(conn, order, at, self.clock) is not None
