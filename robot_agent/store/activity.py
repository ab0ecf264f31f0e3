"""What the robot does, recorded: each change in its own table and its event in the outbox, in one
transaction (docs/sync.md, guarantee 1), so the cloud hears of exactly what the robot committed.

`record` takes the event's data (models/sync_events.py) and the caller's connection; the caller commits. A
purchase also takes what it sold off the robot's copy of the items' stock, where the stock is counted, so the
robot does not sell what it no longer has before the cloud's next word on it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, insert

from models.sync_events import (
    EngineerAction,
    EventData,
    PurchaseMade,
    TaskUpdated,
    TicketChecked,
    event_payload,
)
from robot_agent.clock import Clock
from robot_agent.store import outbox, replica
from robot_agent.store.tables import (
    EngineerActionRecord,
    RobotPurchase,
    RobotPurchaseItem,
    TaskDelivery,
    TicketCheck,
)

_PURCHASES = RobotPurchase.__table__  # type: ignore[attr-defined]
_LINES = RobotPurchaseItem.__table__  # type: ignore[attr-defined]
_CHECKS = TicketCheck.__table__  # type: ignore[attr-defined]
_TASKS = TaskDelivery.__table__  # type: ignore[attr-defined]
_ACTIONS = EngineerActionRecord.__table__  # type: ignore[attr-defined]


def record(conn: Connection, data: EventData, clock: Clock, *, compartment: int | None = None) -> int:
    """Record `data` in its table and the outbox, in the caller's transaction; returns the event's seq.
    `compartment`: where a purchase waits to be handed over (the robot's own business, not the cloud's)."""
    seq = outbox.append(conn, *event_payload(data), clock)
    if isinstance(data, PurchaseMade):
        conn.execute(
            insert(_PURCHASES).values(
                id=data.purchase_id,
                store_id=data.store_id,
                user_id=data.user_id,
                is_default_ready=data.is_default_ready,
                at=data.at,
                event_seq=seq,
                compartment=compartment,
            )
        )
        sold: dict[uuid.UUID, int] = {}
        for line in data.items:
            sold[line.item_id] = sold.get(line.item_id, 0) + line.count
        conn.execute(
            insert(_LINES),
            [{"purchase_id": data.purchase_id, "item_id": i, "count": n} for i, n in sold.items()],
        )
        for item_id, count in sold.items():
            replica.take_off_stock(conn, item_id, count)
    elif isinstance(data, TicketChecked):
        conn.execute(
            insert(_CHECKS).values(
                seq=seq,
                ticket_id=data.ticket_id,
                verdict=data.verdict,
                train_number=data.train_number,
                at=data.at,
                method=data.method,
            )
        )
    elif isinstance(data, TaskUpdated):
        conn.execute(insert(_TASKS).values(seq=seq, task_id=data.task_id, is_ready=data.is_ready, at=data.at))
    else:
        assert isinstance(data, EngineerAction)
        conn.execute(
            insert(_ACTIONS).values(
                seq=seq, engineer_id=data.engineer_id, action=data.action, detail=data.detail, at=data.at
            )
        )
    return seq
