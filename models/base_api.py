"""Request and response bodies of the Base API (`/base_api`), designed on the Store API's pattern.

Admin bodies create rows of the seed's Base tables; responses never carry secrets (password hashes, card
keys). Datetimes in requests must carry a time zone: a ticket's date is an instant, not a wall-clock reading.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Annotated, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from models.instants import CalendarDate, StoredInstant, Within
from models.store_api import INT32_MAX, NO_NUL, reject_non_integers
from models.ticket_claims import EPOCH, MAX_NUMERIC_DATE
from models.ticket_codec import MAX_TOKEN_CHARS

PositiveInt = Annotated[int, Field(ge=1, le=INT32_MAX), BeforeValidator(reject_non_integers)]
NonNegativeInt = Annotated[int, Field(ge=0, le=INT32_MAX), BeforeValidator(reject_non_integers)]

TICKET_LATEST = EPOCH + dt.timedelta(seconds=MAX_NUMERIC_DATE)
TicketInstant = Annotated[
    AwareDatetime, Within(EPOCH, TICKET_LATEST, "a ticket's time is a uint32 NumericDate")
]
"""A time a ticket's token carries (date, start_date, expiry): what a CWT NumericDate of 32 bits holds."""


class UserCreate(BaseModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=NO_NUL)]


class UserOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: dt.datetime


class TicketCreate(BaseModel):
    """A ticket to issue; the answer carries its signed token."""

    user_id: uuid.UUID
    train_number: PositiveInt
    wagon_number: PositiveInt
    place_number: PositiveInt
    date: TicketInstant
    station_id: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=NO_NUL)]
    destination_id: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=NO_NUL)]
    start_date: TicketInstant
    code: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)] | None = Field(
        default=None, description="the ticket's code; a random one when omitted"
    )
    valid_until: TicketInstant | None = Field(
        default=None, description="when the token expires; default: start_date + 8 days (the longest trip)"
    )
    holder_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None,
        description="the passenger's wallet key (raw Ed25519 public key, 64 lowercase hex digits): the "
        "ticket is then valid only as the live code the wallet signs when it shows it (docs/tickets.md)",
    )

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> TicketCreate:
        if self.valid_until is not None and self.valid_until <= self.start_date:
            raise ValueError("valid_until must be after start_date")
        return self


class TicketOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    train_number: int
    wagon_number: int
    place_number: int
    date: dt.datetime
    station_id: str
    destination_id: str
    start_date: dt.datetime
    code: str
    used: bool
    revoked: bool
    token: str | None = Field(description="the signed token the ticket's QR code carries")


class RevokeBody(BaseModel):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=NO_NUL)] = (
        "revoked by an administrator"
    )


class EngineerCreate(BaseModel):
    login: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=NO_NUL)]
    password: Annotated[str, StringConstraints(min_length=8, max_length=1024, pattern=NO_NUL)]
    privileges: NonNegativeInt = 0


class EngineerOut(BaseModel):
    id: uuid.UUID
    login: str
    privileges: int
    created_at: dt.datetime


class AuthCardCreate(BaseModel):
    engineer_id: uuid.UUID
    uid: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{8,20}$")] = Field(
        description="the card's UID in hex (4 to 10 bytes); only a keyed hash of it is stored"
    )


class AuthCardOut(BaseModel):
    id: uuid.UUID
    engineer_id: uuid.UUID
    created_at: dt.datetime


# An Ed25519 SubjectPublicKeyInfo in PEM: a fixed 12-byte DER header (MCowBQYDK2VwAyEA), then the 32-byte key
# (its last base64 character carries 2 padding bits, so only every fourth letter can stand there).
ED25519_PEM_PATTERN = (
    r"^-----BEGIN PUBLIC KEY-----\r?\nMCowBQYDK2VwAyEA[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=\r?\n"
    r"-----END PUBLIC KEY-----\r?\n?$"
)


class RobotCreate(BaseModel):
    id: uuid.UUID | None = Field(
        default=None,
        description="the robot's id, as its robot.toml names it ([robot] id); a random one when omitted",
    )
    robot_model_id: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=NO_NUL)]
    robot_model_name: Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=NO_NUL)]
    public_key: Annotated[str, StringConstraints(pattern=ED25519_PEM_PATTERN)] | None = Field(
        default=None, description="the robot's Ed25519 public key (PEM), as `robot-agent keys init` prints it"
    )

    @field_validator("public_key")
    @classmethod
    def _ed25519_pem(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            key = serialization.load_pem_public_key(value.encode())
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise ValueError("public_key is not a PEM public key") from err
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"public_key is a {type(key).__name__}, expected Ed25519")
        return value


class RobotOut(BaseModel):
    id: uuid.UUID
    robot_model_id: str
    robot_model_name: str
    public_key: str | None
    created_at: dt.datetime


class AssignmentCreate(BaseModel):
    robot_id: uuid.UUID
    train_number: PositiveInt
    train_date: CalendarDate


class AssignmentOut(AssignmentCreate):
    id: uuid.UUID
    created_at: dt.datetime


class PlaceCreate(BaseModel):
    """A hotel or an attraction at a destination."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL)]
    description: Annotated[str, StringConstraints(max_length=1024, pattern=NO_NUL)] | None = None
    logo_url: Annotated[str, StringConstraints(max_length=256, pattern=NO_NUL)] | None = None
    destination_id: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL)]


class PlaceOut(PlaceCreate):
    id: uuid.UUID
    created_at: dt.datetime


class TrainStoreCreate(BaseModel):
    store_id: uuid.UUID
    train_number: PositiveInt
    train_date: StoredInstant


class TrainStoreOut(BaseModel):
    id: uuid.UUID
    store_id: uuid.UUID
    train_number: int
    train_date: dt.datetime


class ActiveStoreCreate(BaseModel):
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=NO_NUL)]


class ActiveStoreOut(ActiveStoreCreate):
    id: uuid.UUID
    created_at: dt.datetime


class TrustedKeyOut(BaseModel):
    """One key of the ticket trust list, JWK-style (RFC 8037) plus the period it signed in."""

    kid: str = Field(description="hex of the 8-byte COSE key id")
    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    x: str = Field(description="the raw public key, base64url without padding")
    valid_from: dt.datetime
    valid_to: dt.datetime | None


class TrustList(BaseModel):
    keys: list[TrustedKeyOut]


class VerifyRequest(BaseModel):
    # As long as a QR code can hold, so that the cloud can judge every code a robot can: a longer one is no
    # ticket, and the verifier would only say `too_large`.
    token: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_CHARS, pattern=NO_NUL)]
    train_number: PositiveInt | None = Field(default=None, description="check the ticket is for this train")
    date: CalendarDate | None = Field(
        default=None, description="check the ticket is for this date (with train_number)"
    )
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)] = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as err:
            raise ValueError(f"unknown time zone {value!r}") from err
        return value

    @model_validator(mode="after")
    def _train_and_date_together(self) -> VerifyRequest:
        if (self.train_number is None) != (self.date is None):
            raise ValueError("train_number and date go together: give both or neither")
        return self


class VerifyOut(BaseModel):
    ok: bool
    verdict: str
    reason: str
    ticket_id: uuid.UUID | None


class RobotSeqGaps(BaseModel):
    """One robot's sequence numbers as ingest saw them (docs/sync.md, "Gaps")."""

    robot_id: uuid.UUID
    last_seq: int = Field(description="the highest seq that reached ingest")
    missing: int = Field(description="how many seqs from 1 to last_seq never reached ingest")
    gaps: list[Annotated[list[int], Field(min_length=2, max_length=2)]] = Field(
        description="the missing seqs as [first, last] runs, inclusive, in order"
    )


class SeqGaps(BaseModel):
    robots: list[RobotSeqGaps]
