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
    """Any refusal but invalid input: `{"detail": "what went wrong"}`."""

    detail: str


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
    engineer_id: uuid.UUID
    login: str
    privileges: list[str]
    via: Literal["password", "card"]
    expires_in_s: float = Field(description="Seconds left unless used (each use renews it).")


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
