"""What each event type's `data` holds (docs/sync.md, "A batch"): one pydantic model per type.

The robot builds an event's data from its model (`event_payload`), so what goes into the outbox is valid;
ingest reads it back with `parse_event`, which refuses data that does not fit its type (the batch then goes
to the dead-letter table with the reason). Times are aware UTC datetimes from the robot's clock: recorded,
never trusted for ordering (that is the event's `seq`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from models.errors import ModelsError
from models.instants import STORED
from models.store_api import NO_NUL, PurchaseLine


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a time with its time zone is needed")
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


# Bounded before the conversion to UTC: year 1 at +14:00 (or 9999 at -14:00) would raise OverflowError there,
# which pydantic does not turn into a validation error, so ingest would fail on the batch, not refuse it.
AwareTime = Annotated[
    dt.datetime,
    AfterValidator(_aware),
    STORED,
    AfterValidator(_utc),
]


class _EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PurchaseMade(_EventData):
    """A passenger bought from an onboard store through the robot (the seed's purchase, made offline)."""

    type: Literal["purchase"] = "purchase"
    purchase_id: uuid.UUID
    store_id: uuid.UUID
    user_id: uuid.UUID
    items: list[PurchaseLine] = Field(min_length=1, max_length=100)
    is_default_ready: StrictBool = False
    at: AwareTime


class TicketChecked(_EventData):
    """The robot checked a ticket (its QR, or its token for a recognised face): its verdict
    (models.tickets.Verdict's value) and, if it could read one, which ticket. Two robots accepting one ticket
    is a conflict the cloud records."""

    type: Literal["ticket.checked"] = "ticket.checked"
    ticket_id: uuid.UUID | None
    verdict: Annotated[str, Field(min_length=1, max_length=40, pattern=NO_NUL)]
    train_number: int = Field(ge=0, le=2**31 - 1)
    at: AwareTime
    # How the code reached the robot: "camera", "image" (a file, `robot-agent verify-ticket --image`),
    # "token" (typed or pasted) or "face" (the camera recognised the passenger; their ticket's token came
    # from the robot's copy). Older robots sent no method: theirs were camera checks. Any short text is
    # accepted, not only these: a cloud that refused a newer robot's method would dead-letter the whole
    # batch, the purchases in it too (decisions §41).
    method: Annotated[str, Field(min_length=1, max_length=20, pattern=NO_NUL)] = "camera"


class TaskUpdated(_EventData):
    """A store task changed on the robot (e.g. a delivery handed over)."""

    type: Literal["task_update"] = "task_update"
    task_id: uuid.UUID
    is_ready: StrictBool
    at: AwareTime


class EngineerAction(_EventData):
    """An engineer did something on the robot's terminal (logged in by card, ran a check, ...)."""

    type: Literal["engineer_action"] = "engineer_action"
    engineer_id: uuid.UUID
    action: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]
    detail: Annotated[str, Field(max_length=255, pattern=NO_NUL)] = ""
    at: AwareTime


EventData = PurchaseMade | TicketChecked | TaskUpdated | EngineerAction
EVENT_TYPES: Final[dict[str, type[EventData]]] = {
    "purchase": PurchaseMade,
    "ticket.checked": TicketChecked,
    "task_update": TaskUpdated,
    "engineer_action": EngineerAction,
}


class EventDataError(ModelsError, ValueError):
    """Event data that does not fit its type; the message names the type and the first field at fault."""


def event_payload(data: EventData) -> tuple[str, dict[str, Any]]:
    """The event's type and its data as the outbox stores it (CBOR-ready Python values)."""
    # mode="python" keeps UUIDs and datetimes as they are: CBOR has tags for both (37 and 0).
    return data.type, data.model_dump(mode="python", exclude={"type"})


def parse_event(type_: str, values: object) -> EventData:
    """Validate one event's data against its type; raises `EventDataError`."""
    model = EVENT_TYPES.get(type_)
    if model is None:
        raise EventDataError(f"unknown event type {type_!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    if not isinstance(values, dict):
        raise EventDataError(f"{type_}: data must be a map, not {type(values).__name__}")
    try:
        return model.model_validate({**values, "type": type_})
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise EventDataError(f"{type_}: {where}: {first['msg']}") from err
