"""pycose 1.1.0, an independent COSE implementation, and our ticket code agree on COSE_Sign1 with EdDSA.

pycose decodes and verifies the COSE layer of our tokens; COSE_Sign1 messages that pycose builds and signs are
accepted by our verifier. Negative controls show that neither side agrees with anything.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pycose.algorithms import EdDSA, Es256
from pycose.headers import KID, Algorithm
from pycose.keys.curves import P256, Ed25519
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey
from pycose.messages.sign1message import Sign1Message

from models.tickets import (
    PREFIX,
    Assignment,
    TicketClaims,
    TrustedKey,
    Verdict,
    base45_encode,
    claims_to_cbor,
    decode_claims,
    decode_ticket,
    encode_ticket,
    key_id,
    verify_ticket,
)

PRIVATE_KEY = Ed25519PrivateKey.from_private_bytes(
    bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
)
PUBLIC_RAW = PRIVATE_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
PRIVATE_RAW = PRIVATE_KEY.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
KID_BYTES = key_id(PUBLIC_RAW)
NOW = dt.datetime(2026, 11, 27, 20, 0, tzinfo=dt.UTC)
TRUST = [TrustedKey.from_public_key(PUBLIC_RAW, valid_from=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))]
CLAIMS = TicketClaims(
    ticket_id=uuid.UUID("0b7e2a7c-54d4-4f0e-9f57-3c0f6c1d2e11"),
    user_id=uuid.UUID("6f1c3f0e-2b7a-4c55-8d1e-9a4b0c7d5e22"),
    train_number=742,
    wagon_number=5,
    place_number=36,
    date=dt.datetime(2026, 11, 27, 18, 40, tzinfo=dt.UTC),
    station_id="2000000",
    destination_id="2004000",
    start_date=dt.datetime(2026, 11, 27, 18, 40, tzinfo=dt.UTC),
    code="A7K2Q9",
    issued_at=dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC),
    not_before=dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC),
    expires_at=dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC),
)


# The test vector in docs/tickets.md: Ed25519 is deterministic, so these are exact.
DOCUMENTED_COSE = bytes.fromhex(
    "d2844da20127044821fe31dfa154a261a05866ad041a6b0ac240051a6b001a20061a6b001a2007500b7e2a7c54d44f0e9f573c0f6c"
    "1d2e1120506f1c3f0e2b7a4c558d1e9a4b0c7d5e22211902e62205231824241a6b09ce80251a6b09ce80266732303030303030276732"
    "303034303030286641374b3251395840945a8229b9a5f6d33604357a01baed54a353feea22c5d0d67b9a5ea8fc76a5b3e0d51a442a3f"
    "2121b9a2c363916c46458e701aaec99e30a0fc3343f7a6bd3306"
)
DOCUMENTED_TOKEN = (
    "RB1:NCFOXN%TSMAHO.JNQ8O9KB2W$A4-C2MU8J-LHJIX4TF-SBH5.-P..K:Y0PJR:GNG MFJ8BLVP-P3BN$AQ7.Q2SA6GP3M"
    "MAYQ-QUQ1U*VJ3/PEM3*XK+NPIU9OZA0H8LX88WJDVBEH5OTA0:6300/ZEJTOIHP779EV6J$65$MOAE6H24$KITEQANB-CB1"
    "LRZH-5SSP5LAW7L9ZHTKSDFXM%:ACA5USN%JOY85XX5- 8B-JNZ1/3AIFEA:T9BIN4F63K/KG:5P:BSK:TF+CP40EDCK0"
)


def test_documented_test_vector() -> None:
    assert KID_BYTES.hex() == "21fe31dfa154a261"
    assert decode_ticket(encode_ticket(CLAIMS, PRIVATE_KEY)).cose == DOCUMENTED_COSE
    moscow = Assignment(train_number=742, date=dt.date(2026, 11, 27), timezone="Europe/Moscow")
    result = verify_ticket(DOCUMENTED_TOKEN, trust=TRUST, now=NOW, assignment=moscow)
    assert result.verdict is Verdict.VALID, result.reason
    assert result.claims == CLAIMS
    assert decode_ticket(DOCUMENTED_TOKEN).cose == DOCUMENTED_COSE
    message = Sign1Message.decode(DOCUMENTED_COSE)
    message.key = pycose_public_key()
    assert message.verify_signature()


def pycose_public_key() -> OKPKey:
    return OKPKey(crv=Ed25519, x=PUBLIC_RAW)


def pycose_sign(message: Sign1Message) -> str:
    """Sign with pycose and wrap the COSE_Sign1 in our outer layers."""
    message.key = OKPKey(crv=Ed25519, x=PUBLIC_RAW, d=PRIVATE_RAW)
    return PREFIX + base45_encode(zlib.compress(message.encode(tag=True)))


def test_pycose_verifies_our_token() -> None:
    decoded = decode_ticket(encode_ticket(CLAIMS, PRIVATE_KEY))
    message = Sign1Message.decode(decoded.cose)
    message.key = pycose_public_key()
    assert message.verify_signature()
    assert message.phdr[Algorithm] is EdDSA
    assert message.phdr[KID] == KID_BYTES
    assert message.uhdr == {}
    assert message.payload is not None
    assert decode_claims(message.payload) == CLAIMS


def test_pycose_refuses_our_token_once_tampered() -> None:
    # The control for the test above: pycose really checks the signature it is given.
    decoded = decode_ticket(encode_ticket(CLAIMS, PRIVATE_KEY))
    forged = cbor2.loads(decoded.payload)
    forged[-2] = 743
    message = Sign1Message.decode(decoded.cose)
    message.payload = cbor2.dumps(forged)
    message.key = pycose_public_key()
    assert not message.verify_signature()


def test_token_signed_by_pycose_is_valid() -> None:
    token = pycose_sign(Sign1Message(phdr={Algorithm: EdDSA, KID: KID_BYTES}, payload=claims_to_cbor(CLAIMS)))
    result = verify_ticket(token, trust=TRUST, now=NOW)
    assert result.verdict is Verdict.VALID, result.reason
    assert result.claims == CLAIMS
    assert result.kid == KID_BYTES


def test_pycose_token_with_kid_only_in_the_unprotected_header_is_refused() -> None:
    # What some EU DCC issuers do; RB1 requires the kid under the signature.
    message = Sign1Message(phdr={Algorithm: EdDSA}, uhdr={KID: KID_BYTES}, payload=claims_to_cbor(CLAIMS))
    result = verify_ticket(pycose_sign(message), trust=TRUST, now=NOW)
    assert result.verdict is Verdict.BAD_COSE
    assert "kid is only in the unprotected header" in result.reason


def test_pycose_token_signed_with_es256_is_an_unsupported_algorithm() -> None:
    message = Sign1Message(phdr={Algorithm: Es256, KID: KID_BYTES}, payload=claims_to_cbor(CLAIMS))
    message.key = EC2Key.generate_key(crv=P256)
    token = PREFIX + base45_encode(zlib.compress(message.encode(tag=True)))
    result = verify_ticket(token, trust=TRUST, now=NOW)
    assert result.verdict is Verdict.UNSUPPORTED_ALGORITHM
    assert "alg is -7" in result.reason
