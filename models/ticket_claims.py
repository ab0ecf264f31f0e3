"""What an RB1 ticket says: the CWT claims, their CBOR map, and the ticket as claims sealed in a token.

Pure code, no I/O. `models.ticket_codec` owns the layers around the payload; this module owns the payload:
which claims there are, under which keys, with which types and limits (`docs/tickets.md`, layer 5).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.cbor import cbor_head, cbor_int, cbor_text, describe_cbor, load_cbor, show_int
from models.ticket_codec import TicketEnvelope, TicketFormatError, Verdict, decode_envelope, seal

# NumericDates are unsigned 32-bit seconds, 1970-01-01 .. 2106-02-07T06:28:15Z: five CBOR bytes at most, and
# far enough from datetime's limits that adding a tolerance or changing the timezone can never overflow.
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_NUMERIC_DATE: Final = 2**32 - 1
INT32: Final = (-(2**31), 2**31 - 1)  # the seed's `integer` columns


def _check_timestamp(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be timezone-aware")
    if value.microsecond:
        raise ValueError("must be whole seconds (a NumericDate has no fractions)")
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError as err:
        raise ValueError("is outside the NumericDate range") from err
    if not EPOCH <= utc <= EPOCH + dt.timedelta(seconds=MAX_NUMERIC_DATE):
        raise ValueError("is outside 1970-01-01T00:00:00Z .. 2106-02-07T06:28:15Z (a uint32 NumericDate)")
    return utc


class TicketClaims(BaseModel):
    """What a ticket says. Datetimes are aware, whole seconds, normalised to UTC."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    ticket_id: uuid.UUID
    user_id: uuid.UUID
    # Ranges and lengths are the seed's `tickets` columns: every row it can hold can be issued.
    train_number: int = Field(ge=INT32[0], le=INT32[1])
    wagon_number: int = Field(ge=INT32[0], le=INT32[1])
    place_number: int = Field(ge=INT32[0], le=INT32[1])
    date: dt.datetime
    station_id: str = Field(max_length=60)
    destination_id: str = Field(max_length=60)
    start_date: dt.datetime
    code: str = Field(max_length=128)
    # The raw Ed25519 public key of the passenger's wallet: the ticket is then shown only as a live code the
    # wallet signs moments before (models.ticket_holder), so a screenshot of it goes stale. None: unbound.
    holder_key: bytes | None = Field(default=None, min_length=32, max_length=32)
    issued_at: dt.datetime
    not_before: dt.datetime
    expires_at: dt.datetime

    @field_validator("date", "start_date", "issued_at", "not_before", "expires_at")
    @classmethod
    def _whole_utc_seconds(cls, value: dt.datetime) -> dt.datetime:
        return _check_timestamp(value)

    @model_validator(mode="after")
    def _window_is_not_empty(self) -> TicketClaims:
        if self.expires_at <= self.not_before:
            raise ValueError("expires_at must be after not_before")
        return self


ClaimKind = Literal["uuid", "int", "time", "text", "key"]


@dataclass(frozen=True)
class ClaimSpec:
    """One CWT claim: the model field it carries, its integer key, how it is encoded."""

    field: str
    key: int
    name: str
    kind: ClaimKind
    optional: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} ({self.key})"


# RFC 8392 registered claims keep their keys; ticket claims take the one-byte negative keys -1..-9, which
# no registered CWT claim uses. The prefix versions the set: RB1 has exactly these claims.
CLAIMS: Final[tuple[ClaimSpec, ...]] = (
    ClaimSpec("expires_at", 4, "exp", "time"),
    ClaimSpec("not_before", 5, "nbf", "time"),
    ClaimSpec("issued_at", 6, "iat", "time"),
    ClaimSpec("ticket_id", 7, "cti", "uuid"),
    ClaimSpec("user_id", -1, "user_id", "uuid"),
    ClaimSpec("train_number", -2, "train_number", "int"),
    ClaimSpec("wagon_number", -3, "wagon_number", "int"),
    ClaimSpec("place_number", -4, "place_number", "int"),
    ClaimSpec("date", -5, "date", "time"),
    ClaimSpec("start_date", -6, "start_date", "time"),
    ClaimSpec("station_id", -7, "station_id", "text"),
    ClaimSpec("destination_id", -8, "destination_id", "text"),
    ClaimSpec("code", -9, "code", "text"),
    ClaimSpec("holder_key", -10, "holder_key", "key", optional=True),
)
_CLAIMS_BY_KEY: Final = {spec.key: spec for spec in CLAIMS}
_CLAIMS_BY_FIELD: Final = {spec.field: spec for spec in CLAIMS}
_WANTED: Final[dict[ClaimKind, str]] = {
    "uuid": "a 16-byte string",
    "int": "an integer",
    "time": "an integer NumericDate",
    "text": "a text string",
    "key": "a 32-byte string (an Ed25519 public key)",
}


def _claim_value(spec: ClaimSpec, value: object) -> object:
    # Exact types: pydantic's lax mode would turn text "742" into 742, and bool is an int in Python.
    if spec.kind == "uuid" and type(value) is bytes and len(value) == 16:
        return uuid.UUID(bytes=value)
    if (spec.kind == "text" and type(value) is str) or (spec.kind == "int" and type(value) is int):
        return value
    if spec.kind == "key" and type(value) is bytes and len(value) == 32:
        return value
    if spec.kind == "time" and type(value) is int:
        if 0 <= value <= MAX_NUMERIC_DATE:
            return EPOCH + dt.timedelta(seconds=value)
        raise TicketFormatError(
            Verdict.BAD_CLAIMS,
            f"claim {spec.label}: NumericDate {show_int(value)} is outside 0..{MAX_NUMERIC_DATE}",
        )
    shown = f"{len(value)} bytes" if type(value) is bytes else describe_cbor(value)
    raise TicketFormatError(
        Verdict.BAD_CLAIMS, f"claim {spec.label} must be {_WANTED[spec.kind]}, got {shown}"
    )


def decode_claims(payload: bytes) -> TicketClaims:
    """The claims in a COSE payload; raises `TicketFormatError(BAD_CLAIMS)` naming the claim at fault."""
    try:
        # Every key and value is type-checked below, which refuses a stray break (0xff) wherever it stands.
        claims_map = load_cbor(payload, stray_breaks=False)
    except ValueError as err:
        raise TicketFormatError(Verdict.BAD_CLAIMS, f"claims are not CBOR: {err}") from err
    if not isinstance(claims_map, dict):
        raise TicketFormatError(Verdict.BAD_CLAIMS, f"claims are {describe_cbor(claims_map)}, not a map")
    for key in claims_map:
        if type(key) is not int or key not in _CLAIMS_BY_KEY:
            shown = show_int(key) if type(key) is int else f"with a key that is {describe_cbor(key)}"
            raise TicketFormatError(Verdict.BAD_CLAIMS, f"unknown claim {shown}; RB1 has no such claim")
    fields: dict[str, object] = {}
    for spec in CLAIMS:
        if spec.key not in claims_map:
            if spec.optional:
                continue
            raise TicketFormatError(Verdict.BAD_CLAIMS, f"claim {spec.label} is missing")
        fields[spec.field] = _claim_value(spec, claims_map[spec.key])
    try:
        return TicketClaims.model_validate(fields)
    except ValidationError as err:
        error = err.errors()[0]
        location = error["loc"][0] if error["loc"] else ""
        spec_at_fault = _CLAIMS_BY_FIELD.get(str(location))
        subject = f"claim {spec_at_fault.label}" if spec_at_fault else "claims"
        raise TicketFormatError(Verdict.BAD_CLAIMS, f"{subject}: {error['msg']}") from err


def _time(value: dt.datetime) -> bytes:
    # TicketClaims holds whole UTC seconds below 2**32, which a float timestamp represents exactly.
    return cbor_head(0, int(value.timestamp()))


_UUID_HEAD: Final = cbor_head(2, 16)  # a byte string of 16
_HOLDER_KEY_HEAD: Final = b"\x29" + cbor_head(2, 32)  # claim -10, a byte string of 32


def _uuid(value: uuid.UUID) -> bytes:
    return _UUID_HEAD + value.bytes


def claims_to_cbor(claims: TicketClaims) -> bytes:
    """The CWT claims map of `claims`, in deterministic encoding (keys in RFC 8949 §4.2.1 order)."""
    # Written out claim by claim, in key order, as in docs/tickets.md: a loop over CLAIMS costs a third more
    # per ticket. The tests hold this to CLAIMS and to cbor2's deterministic encoding.
    holder = b"" if claims.holder_key is None else _HOLDER_KEY_HEAD + claims.holder_key
    return b"".join(
        (
            cbor_head(5, 14 if holder else 13),  # a map of 13, or 14 with the holder's key
            b"\x04" + _time(claims.expires_at),
            b"\x05" + _time(claims.not_before),
            b"\x06" + _time(claims.issued_at),
            b"\x07" + _uuid(claims.ticket_id),
            b"\x20" + _uuid(claims.user_id),
            b"\x21" + cbor_int(claims.train_number),
            b"\x22" + cbor_int(claims.wagon_number),
            b"\x23" + cbor_int(claims.place_number),
            b"\x24" + _time(claims.date),
            b"\x25" + _time(claims.start_date),
            b"\x26" + cbor_text(claims.station_id),
            b"\x27" + cbor_text(claims.destination_id),
            b"\x28" + cbor_text(claims.code),
            holder,  # -10 sorts last: its head 0x29 is the largest
        )
    )


@dataclass(frozen=True)
class DecodedTicket(TicketEnvelope):
    """Every layer of a token and its claims, decoded but not verified."""

    claims: TicketClaims


def decode_ticket(token: str) -> DecodedTicket:
    """Every layer of `token` and its claims; raises `TicketFormatError`. Does NOT check the signature."""
    envelope = decode_envelope(token)
    return DecodedTicket(
        compressed=envelope.compressed,
        cose=envelope.cose,
        protected=envelope.protected,
        protected_header=envelope.protected_header,
        payload=envelope.payload,
        signature=envelope.signature,
        kid=envelope.kid,
        claims=decode_claims(envelope.payload),
    )


def encode_ticket(claims: TicketClaims, private_key: Ed25519PrivateKey) -> str:
    """Sign `claims` with `private_key` into an RB1 token; Ed25519 is deterministic, so is the token."""
    return seal(claims_to_cbor(claims), private_key)
