"""One RB1 ticket and the tools to break it: the key, the typical claims, and the token they make.

Shared by the ticket test modules. Negative cases are built for real from these: the bytes are made the way a
broken or hostile issuer would make them, signed with a real key where the check under test comes after the
signature.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from models.tickets import (
    CLAIMS,
    PREFIX,
    Assignment,
    TicketClaims,
    TrustedKey,
    Verdict,
    VerificationResult,
    base45_encode,
    claims_to_cbor,
    encode_ticket,
    key_id,
    sig_structure,
    verify_ticket,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


NOW = utc(2026, 11, 27, 20, 0)
TICKET_ID = uuid.UUID("0b7e2a7c-54d4-4f0e-9f57-3c0f6c1d2e11")
TYPICAL: dict[str, Any] = {
    "ticket_id": TICKET_ID,
    "user_id": uuid.UUID("6f1c3f0e-2b7a-4c55-8d1e-9a4b0c7d5e22"),
    "train_number": 742,
    "wagon_number": 5,
    "place_number": 36,
    "date": utc(2026, 11, 27, 18, 40),  # 21:40 in Moscow
    "station_id": "2000000",
    "destination_id": "2004000",
    "start_date": utc(2026, 11, 27, 18, 40),
    "code": "A7K2Q9",
    "issued_at": utc(2026, 11, 20, 10, 0),
    "not_before": utc(2026, 11, 20, 10, 0),
    "expires_at": utc(2026, 11, 28, 12, 0),
}
TRUST = [TrustedKey.from_public_key(public_raw(KEY), valid_from=utc(2026, 1, 1))]
ASSIGNMENT = Assignment(train_number=742, date=dt.date(2026, 11, 27), timezone="Europe/Moscow")


def claims(**changes: Any) -> TicketClaims:
    return TicketClaims(**{**TYPICAL, **changes})


TOKEN = encode_ticket(claims(), KEY)


def verify(token: str, **options: Any) -> VerificationResult:
    return verify_ticket(token, **{"trust": TRUST, "now": NOW, **options})


def seal(cose: bytes) -> str:
    """The outer layers around any bytes, the way an issuer would add them."""
    return PREFIX + base45_encode(zlib.compress(cose))


def sign1(
    payload: bytes,
    *,
    protected: dict[Any, Any] | bytes | None = None,
    unprotected: Any = None,
    key: Ed25519PrivateKey = KEY,
    tag: int | None = 18,
) -> bytes:
    """A COSE_Sign1 with a real Ed25519 signature over whatever headers and payload a test wants."""
    if protected is None:
        protected = {1: -8, 4: key_id(public_raw(key))}
    protected_bytes = protected if isinstance(protected, bytes) else cbor2.dumps(protected)
    signature = key.sign(sig_structure(protected_bytes, payload))
    message = [protected_bytes, {} if unprotected is None else unprotected, payload, signature]
    return cbor2.dumps(message if tag is None else cbor2.CBORTag(tag, message))


def claims_map(**changes: Any) -> dict[Any, Any]:
    """The typical claims as a CWT map; a change to `None` removes the claim."""
    encoded: dict[Any, Any] = cbor2.loads(claims_to_cbor(claims()))
    for key, value in changes.items():
        spec_key = next(spec.key for spec in CLAIMS if spec.name == key or spec.field == key)
        if value is None:
            del encoded[spec_key]
        else:
            encoded[spec_key] = value
    return encoded


def signed_claims(claims_value: Any) -> str:
    return seal(sign1(cbor2.dumps(claims_value)))


def assert_verdict(result: VerificationResult, verdict: Verdict, *reason_parts: str) -> None:
    assert result.verdict is verdict, result.reason
    assert not result.ok
    for part in reason_parts:
        assert part in result.reason


LAST_SECOND = utc(2106, 2, 7, 6, 28, 15)  # 2**32 - 1
PAYLOAD = claims_to_cbor(claims())
KID = key_id(public_raw(KEY))
