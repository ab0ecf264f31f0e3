"""The RB1 ticket token: `"RB1:" + base45(zlib(COSE_Sign1(CWT claims)))`, encoded and decoded layer by layer.

Pure code, no I/O. `docs/tickets.md` describes the format byte by byte; `models.ticket_verify` decides whether
a decoded ticket is acceptable. Every decoding failure is a `TicketFormatError` carrying the verdict of the
layer that failed and a reason naming the problem.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PREFIX: Final = "RB1:"

# The largest QR code (version 40, level L) holds 4,296 alphanumeric characters: no scanned ticket is longer.
MAX_TOKEN_CHARS: Final = 4296
# The largest valid claims (every text claim at its length limit in 4-byte UTF-8) make a COSE_Sign1 of 1,173
# bytes, at worst ~1,185 once zlib has failed to shrink it; the caps leave room above that and stop a zip bomb
# after 2 KiB of output.
MAX_COMPRESSED_BYTES: Final = 1536
MAX_COSE_BYTES: Final = 2048

COSE_SIGN1_TAG: Final = 18
HEADER_ALG: Final = 1
HEADER_CRIT: Final = 2
HEADER_KID: Final = 4
ALG_EDDSA: Final = -8
KID_BYTES: Final = 8
ED25519_PUBLIC_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64

# NumericDates are unsigned 32-bit seconds, 1970-01-01 .. 2106-02-07T06:28:15Z: five CBOR bytes at most, and
# far enough from datetime's limits that adding a tolerance or changing the timezone can never overflow.
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_NUMERIC_DATE: Final = 2**32 - 1
INT32: Final = (-(2**31), 2**31 - 1)  # the seed's `integer` columns

BASE45_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_BASE45_VALUES: Final = {char: value for value, char in enumerate(BASE45_ALPHABET)}

_CBOR_TYPE_NAMES: Final[tuple[tuple[type, str], ...]] = (
    (bool, "a boolean"),  # before int: bool is an int in Python, its own type in CBOR
    (int, "an integer"),
    (bytes, "a byte string"),
    (str, "a text string"),
    (float, "a float"),
    (list, "an array"),
    (dict, "a map"),
    (type(None), "null"),
)


class Verdict(StrEnum):
    """The outcome of verifying a ticket: `VALID`, or the first check that failed."""

    VALID = "valid"
    BAD_PREFIX = "bad_prefix"
    BAD_BASE45 = "bad_base45"
    BAD_ZLIB = "bad_zlib"
    TOO_LARGE = "too_large"
    BAD_CBOR = "bad_cbor"
    BAD_COSE = "bad_cose"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    UNKNOWN_KEY = "unknown_key"
    KEY_NOT_VALID_AT_ISSUE = "key_not_valid_at_issue"
    BAD_SIGNATURE = "bad_signature"
    BAD_CLAIMS = "bad_claims"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_TRAIN = "wrong_train"
    WRONG_DATE = "wrong_date"
    REVOKED = "revoked"
    ALREADY_USED = "already_used"


class TicketError(Exception):
    """Base of every ticket error."""


class TicketFormatError(TicketError):
    """A token that cannot be decoded; `verdict` names the layer, `reason` the exact problem."""

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(f"{verdict.value}: {reason}")
        self.verdict = verdict
        self.reason = reason


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


ClaimKind = Literal["uuid", "int", "time", "text"]


@dataclass(frozen=True)
class ClaimSpec:
    """One CWT claim: the model field it carries, its integer key, how it is encoded."""

    field: str
    key: int
    name: str
    kind: ClaimKind

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
)
_CLAIMS_BY_KEY: Final = {spec.key: spec for spec in CLAIMS}
_CLAIMS_BY_FIELD: Final = {spec.field: spec for spec in CLAIMS}
_WANTED: Final[dict[ClaimKind, str]] = {
    "uuid": "a 16-byte string",
    "int": "an integer",
    "time": "an integer NumericDate",
    "text": "a text string",
}


def key_id(public_key_raw: bytes) -> bytes:
    """The `kid` of an Ed25519 public key: the first 8 bytes of SHA-256 of its raw 32 bytes."""
    if len(public_key_raw) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key is 32 raw bytes, not {len(public_key_raw)}")
    return hashlib.sha256(public_key_raw).digest()[:KID_BYTES]


def base45_encode(data: bytes) -> str:
    """RFC 9285 base45: each 2 bytes become 3 characters, a last odd byte 2 characters."""
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        rest, c = divmod(data[i] * 256 + data[i + 1], 45)
        e, d = divmod(rest, 45)
        out += (BASE45_ALPHABET[c], BASE45_ALPHABET[d], BASE45_ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (BASE45_ALPHABET[c], BASE45_ALPHABET[d])
    return "".join(out)


def base45_decode(text: str) -> bytes:
    """Strict RFC 9285 decoding; raises `ValueError` naming the position of the first problem."""
    values: list[int] = []
    for position, char in enumerate(text):
        value = _BASE45_VALUES.get(char)
        if value is None:
            raise ValueError(f"invalid character U+{ord(char):04X} at position {position}")
        values.append(value)
    if len(values) % 3 == 1:
        raise ValueError(f"length {len(values)} leaves one dangling character")
    out = bytearray()
    whole = len(values) - len(values) % 3
    for i in range(0, whole, 3):
        number = values[i] + values[i + 1] * 45 + values[i + 2] * 2025
        # Rejecting overlong groups keeps the encoding one-to-one: one byte string, one text.
        if number > 0xFFFF:
            raise ValueError(f"group at position {i} is {number}, above 65535")
        out += number.to_bytes(2, "big")
    if whole < len(values):
        number = values[whole] + values[whole + 1] * 45
        if number > 0xFF:
            raise ValueError(f"final pair at position {whole} is {number}, above 255")
        out.append(number)
    return bytes(out)


def describe_cbor(value: object) -> str:
    """A CBOR type name for reasons; never the value itself, which may be large or hostile."""
    if isinstance(value, cbor2.CBORTag):
        return f"a tag {value.tag}"
    for kind, name in _CBOR_TYPE_NAMES:
        if isinstance(value, kind):
            return name
    # cbor2 turns well-known tags and simple values into Python objects (datetime, UUID, set, ...).
    return f"a tagged or special value ({type(value).__name__})"


def show_int(value: int) -> str:
    """An integer for a reason; a huge one is not worth printing (and past 4,300 digits Python refuses)."""
    return str(value) if -(2**64) <= value < 2**64 else "a big integer"


try:
    # cbor2 5.9 decodes a stray "break" byte (0xff) as a marker object instead of failing: find it, refuse it.
    _STRAY_BREAK: object = cbor2.loads(b"\xff")
except cbor2.CBORDecodeError:  # a cbor2 that refuses it itself
    _STRAY_BREAK = object()


def _has_stray_break(value: object) -> bool:
    pending, seen = [value], set()
    while pending:
        item = pending.pop()
        if item is _STRAY_BREAK:
            return True
        if id(item) in seen:  # shared references (tags 28/29) can make cycles
            continue
        seen.add(id(item))
        if isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, cbor2.CBORTag):
            pending.append(item.value)
    return False


def load_cbor(data: bytes) -> object:
    """Decode exactly one CBOR item; raises `ValueError` for malformed data or bytes after the item."""
    stream = io.BytesIO(data)
    try:
        value: object = cbor2.CBORDecoder(stream).decode()
    except Exception as err:
        # cbor2's tag decoders raise more than CBORDecodeError (decimal.Overflow, ValueError from big
        # integers, RecursionError): all of them mean the same thing here, bytes that are not our CBOR.
        raise ValueError(f"{type(err).__name__}: {str(err)[:120]}") from err
    if stream.tell() != len(data):
        raise ValueError(f"{len(data) - stream.tell()} bytes after the CBOR item")
    if _has_stray_break(value):
        raise ValueError("a break (0xff) outside an indefinite-length item")
    return value


def _inflate(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        # Asking for one byte more than the cap tells "exactly at the cap" from "beyond it" without
        # ever holding more than MAX_COSE_BYTES + 1 bytes of a zip bomb.
        cose = inflater.decompress(compressed, MAX_COSE_BYTES + 1)
    except zlib.error as err:
        raise TicketFormatError(Verdict.BAD_ZLIB, f"zlib: {err}") from err
    if len(cose) > MAX_COSE_BYTES:
        raise TicketFormatError(Verdict.TOO_LARGE, f"decompresses to more than {MAX_COSE_BYTES} bytes")
    if not inflater.eof:
        raise TicketFormatError(Verdict.BAD_ZLIB, "zlib: stream is truncated")
    if inflater.unused_data:
        raise TicketFormatError(
            Verdict.BAD_ZLIB, f"zlib: {len(inflater.unused_data)} bytes after the end of the stream"
        )
    return cose


@dataclass(frozen=True)
class TicketEnvelope:
    """Every layer of a token down to the signed payload. Nothing here is authenticated yet."""

    compressed: bytes
    cose: bytes
    protected: bytes  # the protected header exactly as signed
    protected_header: Mapping[int | str, object]
    payload: bytes
    signature: bytes
    kid: bytes

    def to_be_signed(self) -> bytes:
        """The RFC 9052 Sig_structure the signature covers (no external AAD)."""
        return sig_structure(self.protected, self.payload)


@dataclass(frozen=True)
class DecodedTicket(TicketEnvelope):
    """Every layer of a token and its claims, decoded but not verified."""

    claims: TicketClaims


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """`["Signature1", protected, external_aad = b"", payload]` as CBOR: the bytes Ed25519 signs."""
    return cbor2.dumps(["Signature1", protected, b"", payload])


def _header_map(value: object, which: str) -> dict[int | str, object]:
    if not isinstance(value, dict):
        raise TicketFormatError(Verdict.BAD_COSE, f"{which} header is {describe_cbor(value)}, not a map")
    for label in value:
        # RFC 9052: a header label is an integer or a text string.
        if not isinstance(label, int | str) or isinstance(label, bool):
            raise TicketFormatError(
                Verdict.BAD_COSE, f"{which} header has a label that is {describe_cbor(label)}"
            )
    return value


def _parse_cose(compressed: bytes, cose: bytes, item: object) -> TicketEnvelope:
    def bad(reason: str) -> TicketFormatError:
        return TicketFormatError(Verdict.BAD_COSE, reason)

    if not isinstance(item, cbor2.CBORTag):
        raise bad(f"{describe_cbor(item)} without CBOR tag 18; RB1 needs a tagged COSE_Sign1")
    if item.tag != COSE_SIGN1_TAG:
        raise bad(f"CBOR tag {item.tag}, not COSE_Sign1 (18)")
    parts: object = item.value
    if not isinstance(parts, list) or len(parts) != 4:
        shape = f"an array of {len(parts)}" if isinstance(parts, list) else describe_cbor(parts)
        raise bad(f"COSE_Sign1 is {shape}, not an array of 4")
    protected, unprotected_value, payload, signature = parts
    if type(protected) is not bytes:
        raise bad(f"protected header is {describe_cbor(protected)}, not a byte string")
    if payload is None:
        raise bad("detached payload (nil) is not supported")
    if type(payload) is not bytes:
        raise bad(f"payload is {describe_cbor(payload)}, not a byte string")
    if type(signature) is not bytes:
        raise bad(f"signature is {describe_cbor(signature)}, not a byte string")
    unprotected = _header_map(unprotected_value, "unprotected")
    try:
        # RFC 9052: a zero-length protected bstr stands for an empty map.
        decoded_header = load_cbor(protected) if protected else {}
    except ValueError as err:
        raise bad(f"protected header is not CBOR: {err}") from err
    header = _header_map(decoded_header, "protected")
    if both := header.keys() & unprotected.keys():
        labels = sorted(repr(label)[:40] if isinstance(label, str) else show_int(label) for label in both)
        raise bad(
            f"header parameters {', '.join(labels)} are in both the protected and the unprotected header"
        )
    if HEADER_CRIT in header:
        raise bad("critical header parameters (crit, 2) are not supported")

    alg = header.get(HEADER_ALG)
    if alg is None:
        where = "only in the unprotected header" if HEADER_ALG in unprotected else "missing"
        raise TicketFormatError(Verdict.UNSUPPORTED_ALGORITHM, f"alg (1) is {where}; RB1 needs EdDSA (-8)")
    if type(alg) is not int or alg != ALG_EDDSA:
        shown = show_int(alg) if type(alg) is int else describe_cbor(alg)
        raise TicketFormatError(Verdict.UNSUPPORTED_ALGORITHM, f"alg is {shown}, not EdDSA (-8)")

    kid = header.get(HEADER_KID)
    if kid is None:
        if HEADER_KID in unprotected:
            raise bad("kid is only in the unprotected header; RB1 requires it in the protected header")
        raise bad("no kid (4) in the protected header")
    if type(kid) is not bytes or len(kid) != KID_BYTES:
        shown = f"{len(kid)} bytes" if type(kid) is bytes else describe_cbor(kid)
        raise bad(f"kid is {shown}; RB1 kids are {KID_BYTES} bytes")
    if unprotected:
        # Unprotected headers are not signed: refusing them leaves no unauthenticated bytes in a token.
        raise bad("unprotected header must be empty")
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise bad(f"signature is {len(signature)} bytes; Ed25519 signatures are 64")
    if cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature])) != cose:
        # Non-minimal lengths or indefinite-length strings would be unsigned variants of a signed ticket.
        raise bad("COSE_Sign1 is not in deterministic (shortest-form) encoding")
    return TicketEnvelope(compressed, cose, protected, MappingProxyType(header), payload, signature, kid)


def decode_envelope(token: str) -> TicketEnvelope:
    """Undo prefix, base45, zlib, CBOR and COSE; raises `TicketFormatError`. Checks no signature."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        raise TicketFormatError(Verdict.BAD_PREFIX, f"token does not start with {PREFIX!r}")
    if len(token) > MAX_TOKEN_CHARS:
        raise TicketFormatError(
            Verdict.TOO_LARGE, f"token is {len(token)} characters, over {MAX_TOKEN_CHARS}"
        )
    try:
        compressed = base45_decode(token[len(PREFIX) :])
    except ValueError as err:
        raise TicketFormatError(Verdict.BAD_BASE45, f"base45: {err}") from err
    if len(compressed) > MAX_COMPRESSED_BYTES:
        raise TicketFormatError(
            Verdict.TOO_LARGE, f"compressed data is {len(compressed)} bytes, over {MAX_COMPRESSED_BYTES}"
        )
    cose = _inflate(compressed)
    try:
        item = load_cbor(cose)
    except ValueError as err:
        raise TicketFormatError(Verdict.BAD_CBOR, f"cbor: {err}") from err
    return _parse_cose(compressed, cose, item)


def _claim_value(spec: ClaimSpec, value: object) -> object:
    # Exact types: pydantic's lax mode would turn text "742" into 742, and bool is an int in Python.
    if spec.kind == "uuid" and type(value) is bytes and len(value) == 16:
        return uuid.UUID(bytes=value)
    if (spec.kind == "text" and type(value) is str) or (spec.kind == "int" and type(value) is int):
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
        claims_map = load_cbor(payload)
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


def _numeric_date(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(seconds=1)


def claims_to_cbor(claims: TicketClaims) -> bytes:
    """The CWT claims map of `claims`, in deterministic encoding (keys in RFC 8949 §4.2.1 order)."""
    encoded: dict[int, object] = {}
    for spec in CLAIMS:
        value = getattr(claims, spec.field)
        if spec.kind == "uuid":
            encoded[spec.key] = value.bytes
        elif spec.kind == "time":
            encoded[spec.key] = _numeric_date(value)
        else:
            encoded[spec.key] = value
    return cbor2.dumps(encoded, canonical=True)


def encode_ticket(claims: TicketClaims, private_key: Ed25519PrivateKey) -> str:
    """Sign `claims` with `private_key` into an RB1 token; Ed25519 is deterministic, so is the token."""
    public_raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    protected = cbor2.dumps({HEADER_ALG: ALG_EDDSA, HEADER_KID: key_id(public_raw)}, canonical=True)
    payload = claims_to_cbor(claims)
    signature = private_key.sign(sig_structure(protected, payload))
    cose = cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    compressed = zlib.compress(cose, 9)
    # Unreachable for valid claims (see the caps above): a guard so that we never issue what we would refuse.
    if len(cose) > MAX_COSE_BYTES or len(compressed) > MAX_COMPRESSED_BYTES:
        raise TicketError(f"ticket too large: {len(cose)} bytes of COSE, {len(compressed)} compressed")
    return PREFIX + base45_encode(compressed)
