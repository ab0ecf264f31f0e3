"""The local API's request and response bodies (pydantic), which its OpenAPI document is written from."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hardware.devices import COMPARTMENTS, LightPattern
from models.store_api import NO_NUL, PurchaseLine, ValidationErrorBody

__all__ = ["ValidationErrorBody"]

MAX_FACE_PHOTOS = 5
MAX_FACE_PHOTO_BYTES = 6 * 1024 * 1024


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Any refusal but invalid input: `{"detail": "what went wrong"}`; a refusal for want of step-up also
    says `"step_up": true`."""

    detail: str
    step_up: bool | None = Field(
        default=None,
        description="true (with 403) when the action needs the engineer's password once a session: "
        "POST /session/step-up, then try again.",
    )


class StatusOut(BaseModel):
    """The robot's status (robot_agent/status.py): robot, uptime, parts, MCU link, e-stop, then one object per
    source the agent registered (sync, camera, faces, assignment, ...)."""

    model_config = ConfigDict(extra="allow")

    robot: str
    at: str
    uptime_s: float
    parts: dict[str, Any]
    mcu: dict[str, Any]
    estop: dict[str, Any]


class EventsQuery(_Body):
    after: int | None = Field(default=None, ge=0, description="Start with the kept events after this seq.")
    kinds: str | None = Field(
        default=None, max_length=1000, description="Comma-separated kinds to receive (default: all)."
    )


class EventOut(BaseModel):
    """One line of the event stream (application/x-ndjson)."""

    seq: int
    at: str
    kind: str
    data: dict[str, Any]


class PasswordLogin(_Body):
    login: Annotated[str, Field(min_length=1, max_length=60, pattern=NO_NUL)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class SessionOut(BaseModel):
    """A session. `token` only in the answer to a login: send it as `Authorization: Bearer TOKEN`."""

    token: str | None = None
    id: str = Field(
        description="The session's id (16 hex digits of the token's SHA-256): names it in live `session` "
        "events; not a secret."
    )
    stepped_up: bool = Field(
        description="Whether the engineer's password was given in this session: password logins are stepped "
        "up at once, card logins after POST /session/step-up. Actions that move hardware or touch "
        "biometric data need it."
    )
    engineer_id: uuid.UUID
    login: str
    privileges: list[str]
    via: Literal["password", "card"]
    expires_in_s: float = Field(description="Seconds left unless used (each use renews it).")


class StepUp(_Body):
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class GatePulse(_Body):
    ms: int = Field(default=1000, ge=1, le=10_000)


class LightsTest(_Body):
    pattern: Literal["solid", "blink", "pulse"] = "blink"
    red: int = Field(default=255, ge=0, le=255)
    green: int = Field(default=255, ge=0, le=255)
    blue: int = Field(default=255, ge=0, le=255)
    ms: int = Field(default=2000, ge=1, le=60_000)

    def light_pattern(self) -> LightPattern:
        return LightPattern[self.pattern.upper()]


class BuzzerTest(_Body):
    freq_hz: int = Field(default=1000, ge=100, le=8000)
    ms: int = Field(default=300, ge=1, le=5000)


class CompartmentOpen(_Body):
    ms: int = Field(default=10_000, ge=1, le=30_000)


class Done(BaseModel):
    """An action done: what it was, as audited."""

    action: str
    detail: str


class TicketCode(_Body):
    code: Annotated[str, Field(min_length=1, max_length=8192, pattern=NO_NUL)]


class TicketCheckOut(BaseModel):
    ok: bool
    verdict: str
    reason: str
    ticket_id: uuid.UUID | None
    method: str
    checked_at: str
    train_number: int
    seq: int


class OrderIn(_Body):
    store_id: uuid.UUID
    user_id: uuid.UUID
    items: list[PurchaseLine] = Field(min_length=1, max_length=100)
    compartment: int | None = Field(
        default=None,
        ge=0,
        le=COMPARTMENTS - 1,
        description="The compartment the order waits in until handed over; the lowest free one if not given.",
    )


class OrderOut(BaseModel):
    purchase_id: uuid.UUID
    seq: int
    compartment: int


class OrderState(BaseModel):
    """An order as the robot knows it (robot_agent/selling.py `orders`)."""

    purchase_id: uuid.UUID
    store_id: uuid.UUID
    user_id: uuid.UUID
    at: str
    compartment: int | None
    task_id: uuid.UUID | None
    state: Literal["placed", "waiting", "ready", "delivered"]
    conflicts: list[dict[str, Any]] = Field(description="What the cloud found with the sale: kind, detail.")


class OrdersOut(BaseModel):
    orders: list[OrderState]


class FacePhotos(_Body):
    images: list[Annotated[str, Field(min_length=1, max_length=MAX_FACE_PHOTO_BYTES * 4 // 3 + 4)]] = Field(
        min_length=1, max_length=MAX_FACE_PHOTOS, description="Photos (JPEG, PNG or WebP), base64."
    )


class FacesOut(BaseModel):
    """Per photo, the face enrolled or why it was refused (enrol); or how many faces went (delete)."""

    user_id: uuid.UUID
    results: list[dict[str, Any]] = []
    deleted: int = 0


class FaceCapture(_Body):
    count: int = Field(default=5, ge=1, le=10, description="How many faces to enrol (accepted frames).")
    timeout_s: float = Field(
        default=20.0, ge=1, le=60, description="Stop taking frames after this long, enrolled or not."
    )


class FaceGroup(BaseModel):
    """A passenger's faces of one source on this robot (never an embedding)."""

    user_id: uuid.UUID
    source: Literal["local", "cloud"] = Field(
        description="`local`: enrolled on this robot; `cloud`: came down with the train's passengers."
    )
    count: int
    enrolled_at: str = Field(description="When the newest of them was enrolled (ISO 8601, UTC).")


class FaceList(BaseModel):
    faces: list[FaceGroup] = Field(description="Newest first.")
    total: int = Field(description="How many faces in all (the sum of the counts).")


class CatalogueItem(BaseModel):
    id: uuid.UUID
    name: str
    price_penny: int
    balance: int | None = Field(description="What is left in stock; null: not counted.")


class CatalogueStore(BaseModel):
    id: uuid.UUID
    name: str
    items: list[CatalogueItem]


class CatalogueOut(BaseModel):
    """The stores serving the robot's train now, from its down-synced copy."""

    train_number: int = Field(description="The train the robot serves now (its assignment).")
    stores: list[CatalogueStore]


class OutboxOut(BaseModel):
    depth: int = Field(description="Events the cloud has not acknowledged yet.")
    in_flight: int = Field(description="Of those, how many are in batches sent and awaiting an ack.")
    oldest_age_s: float | None = Field(description="Age of the oldest waiting event; null: none waits.")
    last_ack_at: str | None = Field(description="When the last ack came since the agent started; null: none.")


class CursorOut(BaseModel):
    scope: str = Field(description="A down-sync scope: `all`, `robot:{id}`, `train:{number}`.")
    cursor: int = Field(description="The newest change of the scope this robot has applied.")
    at: str | None = Field(
        description="When a change of the scope was last applied since the agent started; null: not since."
    )


class DeadLetterOut(BaseModel):
    seq: int = Field(description="The event's outbox sequence number.")
    type: str
    reason: str = Field(description="Why the cloud refused it.")
    at: str = Field(description="When the robot made the event (its wall clock).")


class SyncOut(BaseModel):
    """How the robot's sync stands: what it knows locally; no event data."""

    online: bool = Field(description="Whether the link to the broker is up.")
    outbox: OutboxOut
    cursors: list[CursorOut]
    dead_letters: list[DeadLetterOut] = Field(
        description="Events the cloud dead-lettered, newest first (at most 100)."
    )
    dead_letters_total: int
