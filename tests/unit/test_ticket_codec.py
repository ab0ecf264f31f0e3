"""RB1 ticket format: the layers, encoding and decoding, and one real token per format verdict.

Every negative case is built for real: the bytes are made the way a broken or hostile issuer would make them,
signed with a real key where the check under test comes after the signature.
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

import cbor2
import pytest
import segno
from pydantic import ValidationError

from models.tickets import (
    MAX_COMPRESSED_BYTES,
    MAX_COSE_BYTES,
    MAX_TOKEN_CHARS,
    PREFIX,
    Assignment,
    TicketFormatError,
    Verdict,
    base45_decode,
    base45_encode,
    claims_to_cbor,
    decode_envelope,
    decode_ticket,
    encode_ticket,
    key_id,
)
from tests.unit.ticket_samples import (
    ASSIGNMENT,
    KEY,
    KID,
    LAST_SECOND,
    PAYLOAD,
    TICKET_ID,
    TOKEN,
    TYPICAL,
    assert_verdict,
    claims,
    claims_map,
    public_raw,
    seal,
    sign1,
    signed_claims,
    utc,
    verify,
)

# --- round trip and format -------------------------------------------------------------------------------


def test_round_trip_verifies_with_the_same_claims() -> None:
    result = verify(TOKEN, assignment=ASSIGNMENT)
    assert result.ok, result.reason
    assert result.verdict is Verdict.VALID
    assert result.claims == claims()
    assert result.kid == key_id(public_raw(KEY))
    assert decode_ticket(TOKEN).claims == claims()


def test_encoding_is_deterministic() -> None:
    # Ed25519 and the deterministic CBOR make one token per (claims, key): test vectors can be regenerated.
    assert encode_ticket(claims(), KEY) == TOKEN


def test_layers_are_as_documented() -> None:
    decoded = decode_ticket(TOKEN)
    assert TOKEN.startswith("RB1:")
    assert base45_decode(TOKEN[4:]) == decoded.compressed
    assert zlib.decompress(decoded.compressed) == decoded.cose
    assert decoded.cose[:2] == b"\xd2\x84"  # tag 18, array of 4
    assert dict(decoded.protected_header) == {1: -8, 4: key_id(public_raw(KEY))}
    assert decoded.protected == bytes.fromhex("a2012704 48") + decoded.kid
    assert len(decoded.signature) == 64
    payload = cbor2.loads(decoded.payload)
    assert list(payload) == [4, 5, 6, 7, -1, -2, -3, -4, -5, -6, -7, -8, -9]
    assert payload[7] == TICKET_ID.bytes
    assert payload[6] == 1795168800  # 2026-11-20T10:00:00Z as an integer NumericDate


def test_kid_is_the_first_8_bytes_of_sha256_of_the_raw_key() -> None:
    # RFC 8032 test vector 1's public key; its SHA-256 computed independently with `sha256sum`.
    raw = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert key_id(raw) == bytes.fromhex("21fe31dfa154a261")
    with pytest.raises(ValueError, match="32 raw bytes"):
        key_id(raw[:31])


def test_typical_token_is_small() -> None:
    assert len(TOKEN) <= 300


def test_typical_token_fits_a_small_alphanumeric_qr() -> None:
    qr = segno.make(TOKEN, error="m", boost_error=False)
    assert qr.mode == "alphanumeric"
    assert isinstance(qr.version, int)
    assert qr.version <= 10


def test_largest_claims_fit_under_every_cap() -> None:
    biggest = claims(
        train_number=2**31 - 1,
        wagon_number=-(2**31),
        place_number=2**31 - 1,
        date=LAST_SECOND,
        start_date=LAST_SECOND,
        # Characters spread over the astral planes: 4 UTF-8 bytes each, and nothing for zlib to share.
        station_id="".join(chr(0x10000 + i * 7919) for i in range(60)),
        destination_id="".join(chr(0x20000 + i * 7907) for i in range(60)),
        code="".join(chr(0x30000 + i * 4001) for i in range(128)),
        issued_at=LAST_SECOND - dt.timedelta(seconds=2),
        not_before=LAST_SECOND - dt.timedelta(seconds=1),
        expires_at=LAST_SECOND,
    )
    token = encode_ticket(biggest, KEY)
    decoded = decode_ticket(token)
    assert decoded.claims == biggest
    assert len(token) <= MAX_TOKEN_CHARS
    assert len(decoded.compressed) <= MAX_COMPRESSED_BYTES
    assert len(decoded.cose) <= MAX_COSE_BYTES
    # No overflow at the edge of the range, with a tolerance or in a timezone east of UTC.
    edge = Assignment(train_number=2**31 - 1, date=dt.date(2106, 2, 7), timezone="Asia/Kamchatka")
    assert verify(token, now=LAST_SECOND - dt.timedelta(seconds=1), assignment=edge).ok


def test_numeric_dates_are_uint32() -> None:
    with pytest.raises(ValidationError, match="uint32 NumericDate"):
        claims(date=LAST_SECOND + dt.timedelta(seconds=1))
    result = verify(signed_claims(claims_map(date=2**32)))
    assert_verdict(result, Verdict.BAD_CLAIMS, "claim date (-5): NumericDate 4294967296 is outside")


# --- one real token per format verdict, in check order ----------------------------------------------------


@pytest.mark.parametrize("token", ["HC1:" + TOKEN[4:], "rb1:" + TOKEN[4:], TOKEN[4:], "", "RB1"])
def test_bad_prefix(token: str) -> None:
    assert_verdict(verify(token), Verdict.BAD_PREFIX, "'RB1:'")


def test_token_text_beyond_the_cap_is_too_large() -> None:
    token = PREFIX + "0" * (MAX_TOKEN_CHARS - len(PREFIX) + 3)
    assert_verdict(verify(token), Verdict.TOO_LARGE, "characters")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (TOKEN[4:20] + "a" + TOKEN[20:], "base45: invalid character U+0061 at position 16"),
        (TOKEN[4:] + "\n", "base45: invalid character U+000A"),
        (TOKEN[4:] + "0" * ((1 - len(TOKEN[4:])) % 3), "dangling"),
        ("GGW", "above 65535"),  # 16 + 16*45 + 32*45*45 = 65536
        ("W6", "above 255"),  # 32 + 6*45 = 302
    ],
)
def test_bad_base45(text: str, reason: str) -> None:
    assert_verdict(verify(PREFIX + text), Verdict.BAD_BASE45, reason)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is not zlib at all", "zlib: "),
        (zlib.compress(b"x" * 100)[:-3], "truncated"),
        (zlib.compress(b"x" * 100) + b"\x00garbage", "bytes after the end of the stream"),
    ],
)
def test_bad_zlib(data: bytes, reason: str) -> None:
    assert_verdict(verify(PREFIX + base45_encode(data)), Verdict.BAD_ZLIB, reason)


def test_zip_bomb_is_too_large() -> None:
    bomb = zlib.compress(bytes(1_000_000), 9)  # 1 MB of zeros in about 1 KB
    assert len(bomb) <= MAX_COMPRESSED_BYTES  # small enough to pass every cap before decompression
    assert_verdict(verify(PREFIX + base45_encode(bomb)), Verdict.TOO_LARGE, f"more than {MAX_COSE_BYTES}")


def test_zlib_output_just_over_the_cap_is_too_large_and_at_the_cap_is_not() -> None:
    assert_verdict(verify(seal(bytes(MAX_COSE_BYTES + 1))), Verdict.TOO_LARGE)
    assert verify(seal(bytes(MAX_COSE_BYTES))).verdict is Verdict.BAD_CBOR


def test_compressed_data_beyond_the_cap_is_too_large() -> None:
    compressed = bytes(range(256)) * (MAX_COMPRESSED_BYTES // 256 + 1)
    assert_verdict(verify(PREFIX + base45_encode(compressed)), Verdict.TOO_LARGE, "compressed data")


@pytest.mark.parametrize(
    ("cose", "reason"),
    [
        (b"\x1c", "cbor: "),  # reserved additional information
        (b"\xff", "a break (0xff) outside"),
        (b"\x82\x01\xff", "a break (0xff) outside"),
        (b"\x84\x40\xa0", "cbor: "),  # array of 4 that ends after 2
        (b"\x81" * 1000 + b"\x00", "cbor: "),  # nesting past the decoder's depth limit
        (sign1(claims_to_cbor(claims())) + b"\x00", "1 bytes after the CBOR item"),
    ],
)
def test_bad_cbor(cose: bytes, reason: str) -> None:
    assert_verdict(verify(seal(cose)), Verdict.BAD_CBOR, reason)


GOOD = cbor2.loads(sign1(PAYLOAD)).value


@pytest.mark.parametrize(
    ("cose", "reason"),
    [
        (cbor2.dumps({"hello": "world"}), "a map without CBOR tag 18"),
        (sign1(PAYLOAD, tag=None), "an array without CBOR tag 18"),
        (sign1(PAYLOAD, tag=98), "CBOR tag 98, not COSE_Sign1"),
        (cbor2.dumps(cbor2.CBORTag(18, GOOD[:3])), "COSE_Sign1 is an array of 3, not an array of 4"),
        (cbor2.dumps(cbor2.CBORTag(18, {"a": 1})), "COSE_Sign1 is a map, not an array of 4"),
        (cbor2.dumps(cbor2.CBORTag(18, [{1: -8}, {}, PAYLOAD, GOOD[3]])), "protected header is a map"),
        (cbor2.dumps(cbor2.CBORTag(18, [GOOD[0], {}, None, GOOD[3]])), "detached payload"),
        (cbor2.dumps(cbor2.CBORTag(18, [GOOD[0], {}, "text", GOOD[3]])), "payload is a text string"),
        (cbor2.dumps(cbor2.CBORTag(18, [GOOD[0], {}, PAYLOAD, "sig"])), "signature is a text string"),
        (cbor2.dumps(cbor2.CBORTag(18, [GOOD[0], [], PAYLOAD, GOOD[3]])), "unprotected header is an array"),
        (sign1(PAYLOAD, protected=b"\xa1\x01"), "protected header is not CBOR"),
        (sign1(PAYLOAD, protected=cbor2.dumps([1, -8])), "protected header is an array, not a map"),
        (sign1(PAYLOAD, protected={1: -8, 4: KID, b"x": 1}), "a label that is a byte string"),
        (sign1(PAYLOAD, protected={1: -8, 2: [4], 4: KID}), "crit"),
        (sign1(PAYLOAD, protected={1: -8}, unprotected={4: KID}), "kid is only in the unprotected header"),
        (sign1(PAYLOAD, protected={1: -8}), "no kid (4) in the protected header"),
        (
            sign1(PAYLOAD, protected={1: -8, 4: KID}, unprotected={4: KID}),
            "both the protected and the unprotected",
        ),
        (sign1(PAYLOAD, protected={1: -8, 4: KID[:7]}), "kid is 7 bytes"),
        (sign1(PAYLOAD, protected={1: -8, 4: KID.hex()}), "kid is a text string"),
        (sign1(PAYLOAD, unprotected={"note": "unsigned"}), "unprotected header must be empty"),
        (cbor2.dumps(cbor2.CBORTag(18, [*GOOD[:3], GOOD[3][:63]])), "signature is 63 bytes"),
        # The signed ticket with a 2-byte length for its signature: an unsigned variant of a signed token.
        (sign1(PAYLOAD)[:-66] + b"\x59\x00\x40" + sign1(PAYLOAD)[-64:], "deterministic"),
    ],
)
def test_bad_cose(cose: bytes, reason: str) -> None:
    result = verify(seal(cose))
    assert_verdict(result, Verdict.BAD_COSE, reason)
    assert result.claims is None


@pytest.mark.parametrize(
    ("protected", "reason"),
    [
        ({1: -7, 4: KID}, "alg is -7, not EdDSA (-8)"),  # ES256
        ({1: "EdDSA", 4: KID}, "alg is a text string, not EdDSA (-8)"),
        ({4: KID}, "alg (1) is missing"),
        (b"", "alg (1) is missing"),  # an empty protected header is the empty map
    ],
)
def test_unsupported_algorithm(protected: dict[Any, Any] | bytes, reason: str) -> None:
    assert_verdict(verify(seal(sign1(PAYLOAD, protected=protected))), Verdict.UNSUPPORTED_ALGORITHM, reason)


def test_alg_only_in_the_unprotected_header_is_unsupported() -> None:
    result = verify(seal(sign1(PAYLOAD, protected={4: KID}, unprotected={1: -8})))
    assert_verdict(result, Verdict.UNSUPPORTED_ALGORITHM, "only in the unprotected header")


@pytest.mark.parametrize(
    ("claims_value", "reason"),
    [
        (claims_map(code=None), "claim code (-9) is missing"),
        (claims_map(exp=None), "claim exp (4) is missing"),
        (claims_map(train_number="742"), "claim train_number (-2) must be an integer, got a text string"),
        (claims_map(wagon_number=True), "claim wagon_number (-3) must be an integer, got a boolean"),
        (claims_map(exp=1795773600.0), "claim exp (4) must be an integer NumericDate, got a float"),
        (
            claims_map(iat=cbor2.CBORTag(1, 1795168800)),
            "claim iat (6) must be an integer NumericDate, got a tagged",
        ),
        (claims_map(nbf=-1), "claim nbf (5): NumericDate -1 is outside"),
        (claims_map(cti=TICKET_ID.bytes[:15]), "claim cti (7) must be a 16-byte string, got 15 bytes"),
        (
            claims_map(user_id=str(TICKET_ID)),
            "claim user_id (-1) must be a 16-byte string, got a text string",
        ),
        (claims_map(station_id=b"2000000"), "claim station_id (-7) must be a text string, got 7 bytes"),
        (claims_map(code="x" * 129), "claim code (-9): String should have at most 128 characters"),
        (claims_map(place_number=2**31), "claim place_number (-4): Input should be less than or equal"),
        (claims_map(exp=1795168800), "claims: Value error, expires_at must be after not_before"),
        ({**claims_map(), 1: "issuer"}, "unknown claim 1"),
        ({**claims_map(), "train": 742}, "unknown claim with a key that is a text string"),
        ([1, 2, 3], "claims are an array, not a map"),
    ],
)
def test_bad_claims(claims_value: Any, reason: str) -> None:
    result = verify(signed_claims(claims_value))
    assert_verdict(result, Verdict.BAD_CLAIMS, reason)
    assert result.kid == KID


def test_payload_that_is_not_cbor_is_bad_claims() -> None:
    assert_verdict(verify(seal(sign1(b"\xff\xff"))), Verdict.BAD_CLAIMS, "claims are not CBOR")
    assert_verdict(verify(seal(sign1(PAYLOAD + b"\x00"))), Verdict.BAD_CLAIMS, "1 bytes after the CBOR item")


# --- malformed tokens, more ways ----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [5, 50, 100, 200, len(TOKEN) - 1])
def test_truncated_token_is_refused(cut: int) -> None:
    assert verify(TOKEN[:cut]).verdict in {Verdict.BAD_BASE45, Verdict.BAD_ZLIB}


def test_trailing_garbage_after_the_zlib_stream_is_refused() -> None:
    compressed = decode_envelope(TOKEN).compressed + b"\x00\x01"
    assert_verdict(verify(PREFIX + base45_encode(compressed)), Verdict.BAD_ZLIB, "2 bytes after the end")


def test_decode_ticket_raises_format_errors_with_the_verdict() -> None:
    with pytest.raises(TicketFormatError) as caught:
        decode_ticket("HC1:6BFOXN")
    assert caught.value.verdict is Verdict.BAD_PREFIX
    with pytest.raises(TicketFormatError) as caught:
        decode_ticket(signed_claims(claims_map(code=None)))
    assert caught.value.verdict is Verdict.BAD_CLAIMS
    assert caught.value.reason == "claim code (-9) is missing"


# --- the claims model's own validation --------------------------------------------------------------------


def test_claims_are_normalised_to_utc_whole_seconds() -> None:
    moscow = dt.timezone(dt.timedelta(hours=3))
    ticket = claims(date=dt.datetime(2026, 11, 28, 1, 30, tzinfo=moscow))
    assert ticket.date == utc(2026, 11, 27, 22, 30)
    assert ticket.date.tzinfo is dt.UTC
    with pytest.raises(ValidationError, match="timezone-aware"):
        claims(date=dt.datetime(2026, 11, 27, 21, 40))
    with pytest.raises(ValidationError, match="whole seconds"):
        claims(date=utc(2026, 11, 27, 21, 40, 0).replace(microsecond=1))
    with pytest.raises(ValidationError, match="uint32 NumericDate"):
        claims(date=utc(1969, 12, 31, 23, 59, 59))
    with pytest.raises(ValidationError, match="expires_at must be after not_before"):
        claims(expires_at=TYPICAL["not_before"])
    with pytest.raises(ValidationError, match="valid integer"):
        claims(train_number="742")


def test_a_stray_break_in_place_of_a_claim_is_refused_naming_the_claim() -> None:
    # The claims are decoded without the stray-break walk: the type check of every claim is what refuses it.
    payload = cbor2.dumps(claims_map(), canonical=True)
    start = payload.index(b"\x66A7K2Q9")  # the code claim's text, 6 characters
    with_break = payload[:start] + b"\xff" + payload[start + 7 :]
    assert_verdict(verify(seal(sign1(with_break))), Verdict.BAD_CLAIMS, "claim code (-9)", "break")
