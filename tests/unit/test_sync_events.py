"""Event data by type: what the robot writes through its model is what ingest reads back, through CBOR."""

from __future__ import annotations

import datetime as dt
import uuid

import cbor2
import pytest

from models.store_api import PurchaseLine
from models.sync_events import (
    EngineerAction,
    EventDataError,
    PurchaseMade,
    TaskUpdated,
    TicketChecked,
    event_payload,
    parse_event,
)

AT = dt.datetime(2026, 11, 30, 9, 15, tzinfo=dt.UTC)
NAIVE = AT.replace(tzinfo=None)
EARLIEST_EAST = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14)))
LATEST_WEST = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-14)))


@pytest.mark.parametrize(
    "data",
    [
        PurchaseMade(
            purchase_id=uuid.uuid4(),
            store_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            items=[PurchaseLine(item_id=uuid.uuid4(), count=2)],
            is_default_ready=True,
            at=AT,
        ),
        TicketChecked(ticket_id=uuid.uuid4(), verdict="valid", train_number=742, at=AT),
        TicketChecked(ticket_id=None, verdict="bad_base45", train_number=742, at=AT),
        TicketChecked(ticket_id=uuid.uuid4(), verdict="valid", train_number=742, at=AT, method="face"),
        TaskUpdated(task_id=uuid.uuid4(), is_ready=True, at=AT),
        EngineerAction(engineer_id=uuid.uuid4(), action="login", detail="card", at=AT),
    ],
    ids=lambda d: d.type,
)
def test_event_data_survives_cbor_and_validation(data: object) -> None:
    assert isinstance(data, PurchaseMade | TicketChecked | TaskUpdated | EngineerAction)
    kind, values = event_payload(data)
    assert parse_event(kind, cbor2.loads(cbor2.dumps(values, canonical=True))) == data


@pytest.mark.parametrize(
    ("kind", "values", "says"),
    [
        ("refund", {}, "unknown event type 'refund'"),
        ("purchase", [1, 2], "purchase: data must be a map"),
        ("task_update", {"task_id": str(uuid.uuid4()), "is_ready": "yes", "at": AT}, "task_update: is_ready"),
        ("ticket.checked", {"ticket_id": None, "verdict": "valid", "train_number": 742, "at": NAIVE},
         "ticket.checked: at: Value error, a time with its time zone is needed"),
        ("engineer_action", {"engineer_id": str(uuid.uuid4()), "action": "x", "at": AT, "extra": 1}, "extra"),
        # Year 1 at +14:00 is before year 1 in UTC: refused by name, not an OverflowError out of ingest.
        ("task_update", {"task_id": str(uuid.uuid4()), "is_ready": True, "at": EARLIEST_EAST},
         "task_update: at: Input should be an instant from 0001-01-02T00:00:00Z"),
        ("task_update", {"task_id": str(uuid.uuid4()), "is_ready": True, "at": LATEST_WEST},
         "task_update: at: Input should be an instant from"),
    ],
)  # fmt: skip
def test_data_that_does_not_fit_its_type_is_refused_naming_the_field(
    kind: str, values: object, says: str
) -> None:
    with pytest.raises(EventDataError, match=says):
        parse_event(kind, values)
