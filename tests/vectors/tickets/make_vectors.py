"""RB1 ticket test vectors in the spirit of the EU DCC's `dgc-testdata`: one JSON file per case with every
layer, the signer's key, a fixed clock and the expected outcome of each step, and a PNG of the QR code.

    .venv/bin/python -m tests.vectors.tickets.make_vectors [DIRECTORY]

Deterministic: fixed keys (from fixed seeds), fixed ids, a fixed clock, Ed25519 and RFC 6979 ECDSA, so running
it twice writes byte-identical files (`tests/unit/test_ticket_vectors.py` regenerates them and compares).
Broken tokens are built for real, the way a broken or hostile issuer would make them; a case that fails after
the signature check carries a real, valid signature.

A vector (`<name>.json`), layers outside in as `docs/tickets.md` numbers them; a layer that does not exist
for the case (a broken base45 text has no zlib bytes) is null:

- `description`: what the case is and why it gets its verdict.
- `claims`: the CWT claims map as JSON, keyed by `TicketClaims` field name (`"claim <key>"` for a key RB1
  does not know); UUIDs as strings, times as `{"iso": ..., "numeric_date": ...}`, `holder_key` as hex, other
  byte strings as `{"bytes_hex": ...}`, a value of the wrong type as it is (`"742"`).
- `cbor_hex` (the claims, the COSE payload), `cose_hex` (the COSE_Sign1, or whatever the issuer put in its
  place), `compressed_hex` (the bytes the base45 text carries), `zlib` (how `compressed` was made from
  `cose`: `{"library": "zlib" | "zlib-ng", "level": n}` plus `appended_hex` for bytes written after the
  stream; null when it is not a compression of `cose`), `base45` (the text after the prefix, up to the holder
  proof), `prefix`, `holder_proof` (a live code's proof: `at`, `numeric_date`, `proof_hex`, `base45`), `token`
  (the full QR text: `prefix + base45 + holder_proof.base45`), `png` (the QR's file name, or null with a
  `png_note`) and `qr` (its version and error correction level).
- The trust list: `public_key_hex` (raw Ed25519), `kid_hex`, `valid_from`, `valid_to` of the entry the case
  is about (the signer's, or the trusted key a stranger's token names in vain), and `other_trusted_keys`.
- `clock` (the validation time), `clock_tolerance_s`, `assignment` (`train_number`, `date`, `timezone`) or
  null, `revoked` and `used` (ticket ids the verifier must treat so), `holder_window_s`.
- `expected`: `verdict` and `reason_contains` for `verify_ticket`; `expected_decode`, whether
  `decode_ticket` decodes the ticket (the token part of a live code); `expected_signature`, whether the
  COSE_Sign1's Ed25519 signature verifies with `public_key_hex` (null: no Ed25519 COSE_Sign1 to check).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import sys
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cbor2
import segno
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from models.tickets import (
    BASE45_ALPHABET,
    CLAIMS,
    LIVE_PREFIX,
    PREFIX,
    TicketClaims,
    Verdict,
    base45_decode,
    base45_encode,
    claims_to_cbor,
    encode_ticket,
    key_id,
    live_code,
    sig_structure,
)

VECTORS_DIR: Final = Path(__file__).resolve().parent
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
PROOF_CHARS: Final = 102  # base45 of a holder proof's 68 bytes (docs/tickets.md, "Holder binding")
# The verdicts `decode_ticket` raises for: every layer up to and including the claims.
FORMAT_VERDICTS: Final = frozenset(
    {
        Verdict.BAD_PREFIX,
        Verdict.TOO_LARGE,
        Verdict.BAD_BASE45,
        Verdict.BAD_ZLIB,
        Verdict.BAD_CBOR,
        Verdict.BAD_COSE,
        Verdict.UNSUPPORTED_ALGORITHM,
        Verdict.BAD_CLAIMS,
    }
)


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"railbot ticket vectors: {label}".encode()).digest()


def _ed25519(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_seed(label))


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


ISSUER: Final = _ed25519("issuer key from 2026-10-01")
OLD_ISSUER: Final = _ed25519("issuer key 2026-01-01 to 2026-10-01")
STRANGER: Final = _ed25519("a key no trust list holds")
WALLET: Final = _ed25519("Anna's wallet")
OTHER_WALLET: Final = _ed25519("somebody else's wallet")
P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_ISSUER: Final = ec.derive_private_key(
    int.from_bytes(_seed("an ES256 issuer")) % P256_ORDER, ec.SECP256R1()
)


@dataclass(frozen=True)
class Trusted:
    """A trust-list entry: a key and the period in which it may issue tickets."""

    key: Ed25519PrivateKey
    valid_from: dt.datetime
    valid_to: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        public = raw_public(self.key)
        return {
            "public_key_hex": public.hex(),
            "kid_hex": key_id(public).hex(),
            "valid_from": iso(self.valid_from),
            "valid_to": None if self.valid_to is None else iso(self.valid_to),
        }


# One rotation behind us: the robot trusts the retired key for what it signed before 2026-10-01.
CURRENT: Final = Trusted(ISSUER, utc(2026, 10, 1), None)
RETIRED: Final = Trusted(OLD_ISSUER, utc(2026, 1, 1), utc(2026, 10, 1))
TRUST_LIST: Final = (CURRENT, RETIRED)

CLOCK: Final = utc(2026, 11, 27, 20, 0)
TOLERANCE_S: Final = 300  # the verifier's default, which the cloud uses
HOLDER_WINDOW_S: Final = 30  # likewise
ASSIGNMENT: Final = {"train_number": 742, "date": "2026-11-27", "timezone": "Europe/Moscow"}


def ticket_id(name: str) -> uuid.UUID:
    """A fixed, distinct ticket id for each case."""
    return uuid.UUID(bytes=_seed(f"ticket {name}")[:16], version=4)


def claims(name: str, **changes: Any) -> TicketClaims:
    """The typical ticket of docs/tickets.md (train 742 leaving at 21:40 Moscow time), with its own id."""
    typical: dict[str, Any] = {
        "ticket_id": ticket_id(name),
        "user_id": uuid.UUID("6f1c3f0e-2b7a-4c55-8d1e-9a4b0c7d5e22"),
        "train_number": 742,
        "wagon_number": 5,
        "place_number": 36,
        "date": utc(2026, 11, 27, 18, 40),
        "station_id": "2000000",
        "destination_id": "2004000",
        "start_date": utc(2026, 11, 27, 18, 40),
        "code": "A7K2Q9",
        "issued_at": utc(2026, 11, 20, 10, 0),
        "not_before": utc(2026, 11, 20, 10, 0),
        "expires_at": utc(2026, 11, 28, 12, 0),
    }
    return TicketClaims(**{**typical, **changes})


def claims_map(name: str, **changes: Any) -> dict[Any, Any]:
    """The typical claims as a CWT map, changed by field name; a change to None removes the claim."""
    encoded: dict[Any, Any] = cbor2.loads(claims_to_cbor(claims(name)))
    keys = {spec.field: spec.key for spec in CLAIMS}
    for field, value in changes.items():
        key = keys[field] if field in keys else int(field)
        if value is None:
            del encoded[key]
        else:
            encoded[key] = value
    return encoded


# -- tokens, layer by layer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """A token as it was built, every layer kept; None where the layer does not exist."""

    text: str
    prefix: str
    base45: str
    compressed: bytes | None
    zlib: dict[str, Any] | None
    cose: bytes | None
    payload: bytes | None
    proof: bytes | None = None


def sign1(
    payload: bytes,
    key: Ed25519PrivateKey = ISSUER,
    *,
    protected: dict[int, Any] | None = None,
    unprotected: dict[int, Any] | None = None,
    tag: bool = True,
) -> bytes:
    """A COSE_Sign1 with a real Ed25519 signature over whatever headers an issuer chose."""
    header = {1: -8, 4: key_id(raw_public(key))} if protected is None else protected
    protected_bytes = cbor2.dumps(header)
    message = [protected_bytes, unprotected or {}, payload, key.sign(sig_structure(protected_bytes, payload))]
    return cbor2.dumps(cbor2.CBORTag(18, message) if tag else message)


def sealed(cose: bytes, payload: bytes | None, *, appended: bytes = b"") -> Token:
    """The outer layers around any bytes, the way an issuer using stdlib zlib would add them."""
    compressed = zlib.compress(cose, 9) + appended
    how: dict[str, Any] = {"library": "zlib", "level": 9}
    if appended:
        how["appended_hex"] = appended.hex()
    text = base45_encode(compressed)
    return Token(PREFIX + text, PREFIX, text, compressed, how, cose, payload)


def issued(ticket: TicketClaims, key: Ed25519PrivateKey = ISSUER) -> Token:
    """A token from our own issuer, `encode_ticket` (zlib-ng at level 1)."""
    text = encode_ticket(ticket, key)
    compressed = base45_decode(text[len(PREFIX) :])
    cose = zlib.decompress(compressed)
    how = {"library": "zlib-ng", "level": 1}
    return Token(text, PREFIX, text[len(PREFIX) :], compressed, how, cose, claims_to_cbor(ticket))


def shown_live(token: Token, wallet: Ed25519PrivateKey, at: dt.datetime) -> Token:
    """The live code a wallet holding `wallet` shows for `token` at `at`."""
    code = live_code(token.text, wallet, at)
    return dataclasses.replace(token, text=code, prefix=LIVE_PREFIX, proof=base45_decode(code[-PROOF_CHARS:]))


def retexted(token: Token, text: str, *, prefix: str = PREFIX) -> Token:
    """`token` as a scanner or a field mangled its text: what is left of the inner layers is decoded."""
    body = text[len(prefix) :]
    try:
        compressed: bytes | None = base45_decode(body)
    except ValueError:
        return Token(text, prefix, body, None, None, None, None)
    if compressed == token.compressed:
        return dataclasses.replace(token, text=text, prefix=prefix, base45=body)
    inflater = zlib.decompressobj()
    try:
        cose = inflater.decompress(compressed or b"")
    except zlib.error:
        return Token(text, prefix, body, compressed, None, None, None)
    if not inflater.eof:
        return Token(text, prefix, body, compressed, None, None, None)
    return Token(text, prefix, body, compressed, None, cose, token.payload if cose == token.cose else None)


def es256_sign1(payload: bytes) -> bytes:
    """A COSE_Sign1 from an issuer that signs with ES256 (as EU DCC issuers may): a real P-256 signature."""
    kid = hashlib.sha256(p256_public()).digest()[:8]
    protected = cbor2.dumps({1: -7, 4: kid})
    signature = P256_ISSUER.sign(
        sig_structure(protected, payload), ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    )
    r, s = decode_dss_signature(signature)
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, r.to_bytes(32) + s.to_bytes(32)]))


def p256_public() -> bytes:
    return P256_ISSUER.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def blob(label: str, size: int) -> bytes:
    """Incompressible bytes, the same on every run: an issuer embedding a photo."""
    return hashlib.shake_256(_seed(label)).digest(size)


def claims_json(payload: bytes) -> dict[str, Any] | None:
    """The claims map as JSON (see the module docstring), or None if the payload is not a CBOR map."""
    try:
        value = cbor2.loads(payload)
    except cbor2.CBORDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    specs = {spec.key: spec for spec in CLAIMS}
    out: dict[str, Any] = {}
    for key, item in value.items():
        spec = specs.get(key)
        name = spec.field if spec else f"claim {key}"
        kind = spec.kind if spec else None
        if kind == "uuid" and type(item) is bytes and len(item) == 16:
            out[name] = str(uuid.UUID(bytes=item))
        elif kind == "time" and type(item) is int:
            out[name] = {"iso": iso(EPOCH + dt.timedelta(seconds=item)), "numeric_date": item}
        elif kind == "key" and type(item) is bytes:
            out[name] = item.hex()
        elif type(item) is bytes:
            out[name] = {"bytes_hex": item.hex()}
        elif type(item) in (int, str):
            out[name] = item
        else:
            raise TypeError(f"no JSON form for claim {key}: {type(item).__name__}")
    return out


def claims_from_json(value: dict[str, Any]) -> TicketClaims:
    """The `TicketClaims` a vector's (valid) `claims` describe."""
    fields: dict[str, Any] = {}
    kinds = {spec.field: spec.kind for spec in CLAIMS}
    for name, item in value.items():
        kind = kinds[name]
        if kind == "uuid":
            fields[name] = uuid.UUID(item)
        elif kind == "time":
            fields[name] = EPOCH + dt.timedelta(seconds=item["numeric_date"])
        elif kind == "key":
            fields[name] = bytes.fromhex(item)
        else:
            fields[name] = item
    return TicketClaims(**fields)


# -- the cases -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One vector: its token, what a verifier is given besides, and what it must answer."""

    name: str
    description: str
    token: Token
    verdict: Verdict
    reason: str
    signature: bool | None
    signer: Trusted = CURRENT
    clock: dt.datetime = CLOCK
    assignment: dict[str, Any] | None = dataclasses.field(default_factory=lambda: dict(ASSIGNMENT))
    revoked: tuple[uuid.UUID, ...] = ()
    used: tuple[uuid.UUID, ...] = ()
    png_note: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def format_case(name: str, description: str, token: Token, verdict: Verdict, reason: str, **kw: Any) -> Case:
    """A case refused before any claim is read: the robot's assignment does not matter, so there is none."""
    return Case(name, description, token, verdict, reason, assignment=None, **kw)


def _payload(name: str, **changes: Any) -> bytes:
    return cbor2.dumps(claims_map(name, **changes))


def _sized_blob_payload(name: str, compressed_size: int) -> tuple[bytes, bytes]:
    """A signed ticket carrying a photo-sized claim -11, grown until its zlib stream is `compressed_size`."""
    size = compressed_size - 400
    while True:
        payload = _payload(name, **{"-11": blob(name, size)})
        cose = sign1(payload)
        if len(zlib.compress(cose, 9)) >= compressed_size:
            break
        size += 1
    assert len(zlib.compress(cose, 9)) == compressed_size, "zlib grew by more than a byte"
    return cose, payload


def positive_cases() -> list[Case]:
    moscow_night = {"date": utc(2026, 11, 27, 22, 30), "start_date": utc(2026, 11, 27, 22, 30)}
    bound = issued(claims("valid_live_code", holder_key=raw_public(WALLET)))
    return [
        Case(
            "valid_typical",
            "A typical ticket from our issuer (encode_ticket), checked on its train and day.",
            issued(claims("valid_typical")),
            Verdict.VALID,
            f"ticket {ticket_id('valid_typical')} is valid",
            True,
        ),
        Case(
            "valid_moscow_after_midnight",
            "date 2026-11-27T22:30Z is 01:30 on 2026-11-28 in Europe/Moscow: a robot assigned to the 28th "
            "accepts it (checked at 01:00 Moscow time).",
            issued(
                claims("valid_moscow_after_midnight", **moscow_night, expires_at=utc(2026, 12, 5, 22, 30))
            ),
            Verdict.VALID,
            f"ticket {ticket_id('valid_moscow_after_midnight')} is valid",
            True,
            clock=utc(2026, 11, 27, 22, 0),
            assignment={**ASSIGNMENT, "date": "2026-11-28"},
        ),
        Case(
            "valid_live_code",
            "A ticket bound to Anna's wallet (holder_key), shown as the live code her wallet made 12 s ago.",
            shown_live(bound, WALLET, CLOCK - dt.timedelta(seconds=12)),
            Verdict.VALID,
            f"ticket {ticket_id('valid_live_code')} is valid",
            True,
        ),
        Case(
            "valid_signed_by_retired_key",
            "Signed on 2026-09-25 by the key retired on 2026-10-01: a key is judged at iat, so the ticket "
            "stays valid until its own exp.",
            issued(
                claims(
                    "valid_signed_by_retired_key",
                    issued_at=utc(2026, 9, 25, 10),
                    not_before=utc(2026, 9, 25, 10),
                    expires_at=utc(2026, 12, 5, 18, 40),
                ),
                OLD_ISSUER,
            ),
            Verdict.VALID,
            f"ticket {ticket_id('valid_signed_by_retired_key')} is valid",
            True,
            signer=RETIRED,
        ),
        Case(
            "valid_not_before_within_tolerance",
            "nbf is 5 minutes after the clock: exactly the tolerance, so not yet refused.",
            issued(claims("valid_not_before_within_tolerance", not_before=CLOCK + dt.timedelta(minutes=5))),
            Verdict.VALID,
            f"ticket {ticket_id('valid_not_before_within_tolerance')} is valid",
            True,
        ),
        Case(
            "valid_expiry_within_tolerance",
            "exp is 4 min 59 s before the clock: within the 5-minute tolerance.",
            issued(claims("valid_expiry_within_tolerance", expires_at=CLOCK - dt.timedelta(seconds=299))),
            Verdict.VALID,
            f"ticket {ticket_id('valid_expiry_within_tolerance')} is valid",
            True,
        ),
    ]


def format_cases() -> list[Case]:
    typical = issued(claims("typical"))
    lowered = typical.text.lower()
    overlong = _overlong_group(typical.base45)
    truncated_cose = sign1(claims_to_cbor(claims("bad_cbor_truncated_cose")))[:128]
    photo, photo_payload = _sized_blob_payload("too_large_compressed", 1800)
    # 2,862 bytes are 4,293 base45 characters: with the prefix, one more than the largest QR code holds.
    poster, poster_payload = _sized_blob_payload("too_large_token", 2862)
    bomb_payload = _payload("too_large_zip_bomb", code="A" * 8192)
    cut = issued(claims("truncated_token"))
    return [
        format_case(
            "bad_prefix_hc1",
            "An issuer that kept the EU certificate's prefix HC1: around an otherwise good ticket.",
            dataclasses.replace(typical, text="HC1:" + typical.base45, prefix="HC1:"),
            Verdict.BAD_PREFIX,
            "does not start with 'RB1:'",
            signature=True,
        ),
        format_case(
            "bad_prefix_lowercase",
            "A scanner that lowercased the text: the prefix is wrong first (and the base45 with it).",
            retexted(typical, lowered, prefix=lowered[:4]),
            Verdict.BAD_PREFIX,
            "does not start with 'RB1:'",
            signature=None,
        ),
        format_case(
            "bad_base45_base64",
            "An issuer that wrote the zlib bytes in base64 instead of base45.",
            retexted(typical, PREFIX + _base64(typical.compressed)),
            Verdict.BAD_BASE45,
            "base45: invalid character",
            signature=None,
        ),
        format_case(
            "bad_base45_overlong_group",
            "A group written as its value + 65536: a lenient decoder (n mod 65536) reads the same bytes, so "
            "one ticket would have a second text; RFC 9285 refuses a group above 65535.",
            retexted(typical, PREFIX + overlong),
            Verdict.BAD_BASE45,
            "above 65535",
            signature=None,
        ),
        format_case(
            "truncated_token_mid_group",
            "A token cut one character into its last base45 group: a dangling character.",
            retexted(cut, PREFIX + cut.base45[: len(cut.base45) - 2 - (len(cut.base45) - 2) % 3 + 1]),
            Verdict.BAD_BASE45,
            "leaves one dangling character",
            signature=None,
        ),
        format_case(
            "trailing_newline_after_token",
            "Trailing garbage after the token: a scanner that appended a newline.",
            retexted(typical, typical.text + "\n"),
            Verdict.BAD_BASE45,
            "invalid character U+000A",
            signature=None,
        ),
        format_case(
            "bad_zlib_not_compressed",
            "An issuer that forgot the zlib layer: the base45 carries the bare COSE_Sign1.",
            retexted(typical, PREFIX + base45_encode(typical.cose or b"")),
            Verdict.BAD_ZLIB,
            "incorrect header check",
            signature=None,
        ),
        format_case(
            "truncated_token",
            "A token cut to 256 characters by a field too short for it: a truncated zlib stream.",
            retexted(cut, cut.text[:256]),
            Verdict.BAD_ZLIB,
            "stream is truncated",
            signature=None,
        ),
        format_case(
            "trailing_garbage_after_zlib_stream",
            "An issuer that appended its own CRC-32 of the COSE_Sign1 after the zlib stream.",
            _with_crc(issued(claims("trailing_garbage_after_zlib_stream"))),
            Verdict.BAD_ZLIB,
            "4 bytes after the end of the stream",
            signature=True,
        ),
        format_case(
            "too_large_zip_bomb",
            "A zip bomb in miniature: a signed ticket with an 8 KiB code, 8,376 bytes of COSE_Sign1 from 237 "
            "compressed bytes; the verifier stops inflating at 2,049.",
            sealed(sign1(bomb_payload), bomb_payload),
            Verdict.TOO_LARGE,
            "decompresses to more than 2048 bytes",
            signature=True,
        ),
        format_case(
            "too_large_compressed",
            "A signed ticket carrying an incompressible 'photo' claim: 1,800 compressed bytes, over 1,536 "
            "(the token itself, 2,704 characters, is still a QR code).",
            sealed(photo, photo_payload),
            Verdict.TOO_LARGE,
            "compressed data is 1800 bytes, over 1536",
            signature=True,
        ),
        format_case(
            "too_large_token",
            "A signed ticket with a photo-sized claim: 4,297 characters, one more than the largest QR code.",
            sealed(poster, poster_payload),
            Verdict.TOO_LARGE,
            "token is 4297 characters, over 4296",
            signature=True,
            png_note="4,297 characters: no QR code holds them (version 40-L takes 4,296)",
        ),
        format_case(
            "bad_cbor_truncated_cose",
            "An issuer that copied the COSE_Sign1 into a 128-byte buffer: the CBOR item ends early.",
            sealed(truncated_cose, None),
            Verdict.BAD_CBOR,
            "cbor:",
            signature=None,
        ),
        format_case(
            "trailing_garbage_after_cbor",
            "An issuer that padded the COSE_Sign1 with zero bytes to a multiple of 16 before compressing.",
            _padded(claims("trailing_garbage_after_cbor")),
            Verdict.BAD_CBOR,
            "bytes after the CBOR item",
            signature=True,
        ),
        *cose_cases(),
    ]


def cose_cases() -> list[Case]:
    def payload(name: str) -> bytes:
        return claims_to_cbor(claims(name))

    kid = key_id(raw_public(ISSUER))
    untagged = payload("bad_cose_untagged")
    kid_outside = payload("kid_in_unprotected_header")
    loose = payload("bad_cose_not_deterministic")
    es256 = payload("unsupported_algorithm_es256")
    alg_outside = payload("unsupported_algorithm_alg_unprotected")
    return [
        format_case(
            "bad_cose_untagged",
            "A COSE_Sign1 without CBOR tag 18 (RFC 9052 allows that where the context says what it is; "
            "RB1 does not). The signature is real.",
            sealed(sign1(untagged, tag=False), untagged),
            Verdict.BAD_COSE,
            "without CBOR tag 18",
            signature=True,
        ),
        format_case(
            "kid_in_unprotected_header",
            "The kid only in the unprotected header, as some EU DCC issuers put it: not signed, refused.",
            sealed(sign1(kid_outside, protected={1: -8}, unprotected={4: kid}), kid_outside),
            Verdict.BAD_COSE,
            "kid is only in the unprotected header",
            signature=True,
        ),
        format_case(
            "bad_cose_not_deterministic",
            "The payload's length written in two bytes where one would do (59 00 66 for 58 66): the signed "
            "bytes are the same, the token is not in its one deterministic form.",
            sealed(_loose_length(loose), loose),
            Verdict.BAD_COSE,
            "not in deterministic (shortest-form) encoding",
            signature=True,
        ),
        format_case(
            "unsupported_algorithm_es256",
            "An issuer signing with ES256 (ECDSA P-256, alg -7), as EU DCC issuers may: a real P-256 "
            "signature (es256_public_key_hex), kid = SHA-256 of the uncompressed point [0:8].",
            sealed(es256_sign1(es256), es256),
            Verdict.UNSUPPORTED_ALGORITHM,
            "alg is -7, not EdDSA (-8)",
            signature=None,
            extra={"es256_public_key_hex": p256_public().hex()},
        ),
        format_case(
            "unsupported_algorithm_alg_unprotected",
            "alg (EdDSA) only in the unprotected header, which is not signed: refused. The Ed25519 "
            "signature is real.",
            sealed(sign1(alg_outside, protected={4: kid}, unprotected={1: -8}), alg_outside),
            Verdict.UNSUPPORTED_ALGORITHM,
            "alg (1) is only in the unprotected header",
            signature=True,
        ),
    ]


def signature_and_claims_cases() -> list[Case]:
    forged = issued(claims("bad_signature"))
    forged_payload = (forged.payload or b"").replace(b"\x21\x19\x02\xe6", b"\x21\x19\x02\xe7")  # 742 -> 743
    forged_cose = (forged.cose or b"").replace(forged.payload or b"", forged_payload)
    as_text = _payload("bad_claims_train_number_as_text", train_number="742")
    no_code = _payload("bad_claims_missing_code", code=None)
    stranger_kid = key_id(raw_public(STRANGER)).hex()
    return [
        Case(
            "unknown_key",
            "Signed by a key no trust list holds (a forger's own key, with its own kid).",
            issued(claims("unknown_key"), STRANGER),
            Verdict.UNKNOWN_KEY,
            f"kid {stranger_kid} not in trust list",
            False,
        ),
        Case(
            "key_not_valid_at_issue",
            "Signed on 2026-11-20 with the key retired on 2026-10-01 (a stolen retired key).",
            issued(claims("key_not_valid_at_issue"), OLD_ISSUER),
            Verdict.KEY_NOT_VALID_AT_ISSUE,
            "issued at 2026-11-20T10:00:00+00:00 but key",
            True,
            signer=RETIRED,
        ),
        Case(
            "bad_signature",
            "A passenger who moved the ticket to train 743 in the signed payload; the signature is the "
            "issuer's, over train 742.",
            sealed(forged_cose, forged_payload),
            Verdict.BAD_SIGNATURE,
            "signature does not verify with key",
            False,
        ),
        Case(
            "bad_claims_train_number_as_text",
            'A signed ticket whose issuer wrote train_number as text ("742").',
            sealed(sign1(as_text), as_text),
            Verdict.BAD_CLAIMS,
            "claim train_number (-2) must be an integer, got a text string",
            True,
        ),
        Case(
            "bad_claims_missing_code",
            "A signed ticket without its code (-9).",
            sealed(sign1(no_code), no_code),
            Verdict.BAD_CLAIMS,
            "claim code (-9) is missing",
            True,
        ),
    ]


def rule_cases() -> list[Case]:
    moscow_night = {"date": utc(2026, 11, 27, 22, 30), "start_date": utc(2026, 11, 27, 22, 30)}
    bound = issued(claims("holder_proof_missing", holder_key=raw_public(WALLET)))
    bound_elsewhere = issued(claims("bad_holder_proof_other_wallet", holder_key=raw_public(WALLET)))
    bound_stale = issued(claims("holder_proof_stale", holder_key=raw_public(WALLET)))
    unbound = issued(claims("bad_holder_proof_unbound_ticket"))
    revoked, used = claims("revoked"), claims("already_used")
    return [
        Case(
            "not_yet_valid",
            "nbf is 5 min 1 s after the clock: one second beyond the tolerance.",
            issued(claims("not_yet_valid", not_before=CLOCK + dt.timedelta(seconds=301))),
            Verdict.NOT_YET_VALID,
            "not valid before 2026-11-27T20:05:01+00:00",
            True,
        ),
        Case(
            "not_yet_valid_issued_in_future",
            "iat is 5 min 1 s after the clock (nbf long past): an issuer whose clock runs ahead.",
            issued(claims("not_yet_valid_issued_in_future", issued_at=CLOCK + dt.timedelta(seconds=301))),
            Verdict.NOT_YET_VALID,
            "issued in the future",
            True,
        ),
        Case(
            "expired",
            "exp is exactly the tolerance (5 min) before the clock: a token is refused on or after exp.",
            issued(claims("expired", expires_at=CLOCK - dt.timedelta(minutes=5))),
            Verdict.EXPIRED,
            "expired at 2026-11-27T19:55:00+00:00",
            True,
        ),
        Case(
            "wrong_train",
            "A ticket for train 743 shown on train 742.",
            issued(claims("wrong_train", train_number=743)),
            Verdict.WRONG_TRAIN,
            "ticket is for train 743, the robot serves 742",
            True,
        ),
        Case(
            "wrong_date",
            "date 2026-11-27T22:30Z is 2026-11-28 in Europe/Moscow: a robot assigned to the 27th refuses it.",
            issued(claims("wrong_date", **moscow_night, expires_at=utc(2026, 12, 5, 22, 30))),
            Verdict.WRONG_DATE,
            "ticket is for 2026-11-28 (Europe/Moscow), the robot serves 2026-11-27",
            True,
            clock=utc(2026, 11, 27, 22, 0),
        ),
        Case(
            "revoked",
            "A good ticket that has been revoked (refunded).",
            issued(revoked),
            Verdict.REVOKED,
            f"ticket {revoked.ticket_id} is revoked",
            True,
            revoked=(revoked.ticket_id,),
        ),
        Case(
            "already_used",
            "A good ticket that has already been used.",
            issued(used),
            Verdict.ALREADY_USED,
            f"ticket {used.ticket_id} was already used",
            True,
            used=(used.ticket_id,),
        ),
        Case(
            "holder_proof_missing",
            "A ticket bound to Anna's wallet, shown as its bare RB1: token (a copy of the issued token).",
            bound,
            Verdict.HOLDER_PROOF_MISSING,
            "must be shown as the wallet's live code",
            True,
        ),
        Case(
            "bad_holder_proof_other_wallet",
            "A ticket bound to Anna's wallet, shown as a live code signed by somebody else's wallet.",
            shown_live(bound_elsewhere, OTHER_WALLET, CLOCK - dt.timedelta(seconds=5)),
            Verdict.BAD_HOLDER_PROOF,
            "does not verify with the ticket's holder key",
            True,
        ),
        Case(
            "bad_holder_proof_unbound_ticket",
            "A fresh holder proof appended to a ticket that names no holder key.",
            shown_live(unbound, WALLET, CLOCK - dt.timedelta(seconds=5)),
            Verdict.BAD_HOLDER_PROOF,
            "the ticket names no holder key",
            True,
        ),
        Case(
            "holder_proof_stale",
            "Anna's live code, photographed 31 s before the robot reads it: one second beyond the window.",
            shown_live(bound_stale, WALLET, CLOCK - dt.timedelta(seconds=31)),
            Verdict.HOLDER_PROOF_STALE,
            "31 s before now",
            True,
        ),
    ]


def all_cases() -> list[Case]:
    cases = positive_cases() + format_cases() + signature_and_claims_cases() + rule_cases()
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), "two cases share a name"
    return cases


def _overlong_group(text: str) -> str:
    values = {char: value for value, char in enumerate(BASE45_ALPHABET)}
    for start in range(0, len(text) - 2, 3):
        c, d, e = (values[char] for char in text[start : start + 3])
        n = c + 45 * d + 2025 * e + 65536  # the same two bytes to a decoder that takes n mod 65536
        if n <= 44 + 45 * 44 + 2025 * 44:
            e, rest = divmod(n, 2025)
            d, c = divmod(rest, 45)
            return (
                text[:start]
                + BASE45_ALPHABET[c]
                + BASE45_ALPHABET[d]
                + BASE45_ALPHABET[e]
                + text[start + 3 :]
            )
    raise AssertionError("no group small enough")


def _base64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode("ascii")


def _with_crc(token: Token) -> Token:
    cose = token.cose or b""
    return sealed(cose, token.payload, appended=zlib.crc32(cose).to_bytes(4, "big"))


def _padded(ticket: TicketClaims) -> Token:
    payload = claims_to_cbor(ticket)
    cose = sign1(payload)
    return sealed(cose + bytes(-len(cose) % 16), payload)


def _loose_length(payload: bytes) -> bytes:
    good = sign1(payload)
    short_head = b"\x58" + len(payload).to_bytes(1)
    assert good.count(short_head + payload) == 1
    return good.replace(short_head + payload, b"\x59" + len(payload).to_bytes(2, "big") + payload)


# -- writing ---------------------------------------------------------------------------------------------


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def vector_json(case: Case, png: str | None, qr: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON document of a case, its QR code drawn in `png` (a file name) or not at all."""
    token = case.token
    proof = None
    if token.proof is not None:
        at = int.from_bytes(token.proof[:4], "big")
        proof = {
            "at": iso(EPOCH + dt.timedelta(seconds=at)),
            "numeric_date": at,
            "proof_hex": token.proof.hex(),
            "base45": base45_encode(token.proof),
        }
    if png is None and case.png_note is None:
        raise AssertionError(f"{case.name}: no QR code holds the token, and the case does not say why")
    return {
        "description": case.description,
        "claims": None if token.payload is None else claims_json(token.payload),
        "cbor_hex": _hex(token.payload),
        "cose_hex": _hex(token.cose),
        "zlib": token.zlib,
        "compressed_hex": _hex(token.compressed),
        "base45": token.base45,
        "prefix": token.prefix,
        "holder_proof": proof,
        "token": token.text,
        "png": png,
        **({} if case.png_note is None else {"png_note": case.png_note}),
        "qr": qr,
        **case.signer.to_json(),
        "other_trusted_keys": [entry.to_json() for entry in TRUST_LIST if entry is not case.signer],
        "clock": iso(case.clock),
        "clock_tolerance_s": TOLERANCE_S,
        "assignment": case.assignment,
        "revoked": [str(ticket) for ticket in case.revoked],
        "used": [str(ticket) for ticket in case.used],
        "holder_window_s": HOLDER_WINDOW_S,
        "expected": {"verdict": case.verdict.value, "reason_contains": case.reason},
        "expected_decode": case.verdict not in FORMAT_VERDICTS,
        "expected_signature": case.signature,
        **case.extra,
    }


def write_qr(text: str, path: Path) -> dict[str, Any] | None:
    """The QR code of `text` as a PNG at level M, or L where M cannot hold it; None if no QR code can."""
    for level in ("m", "l"):
        try:
            code = segno.make_qr(text, error=level, boost_error=False)
        except segno.DataOverflowError:
            continue
        code.save(str(path), kind="png", scale=6, border=4)
        return {"version": code.version, "error": code.error}
    return None


def write_vectors(directory: Path) -> list[Path]:
    """Write every vector and its PNG into `directory`; vector files there that no case wrote are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for case in all_cases():
        png = directory / f"{case.name}.png"
        qr = write_qr(case.token.text, png)
        if qr is not None:
            written.append(png)
        document = vector_json(case, png.name if qr is not None else None, qr)
        path = directory / f"{case.name}.json"
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    for stale in sorted(set(directory.glob("*.json")) | set(directory.glob("*.png"))):
        if stale not in written:
            stale.unlink()
    return written


def main(argv: Sequence[str] = sys.argv[1:]) -> None:
    directory = Path(argv[0]) if argv else VECTORS_DIR
    written = write_vectors(directory)
    print(f"wrote {len(written)} files to {directory}")


if __name__ == "__main__":
    main()
