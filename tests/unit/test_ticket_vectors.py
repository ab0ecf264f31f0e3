"""Every ticket test vector (`tests/vectors/tickets`, in the spirit of the EU DCC's dgc-testdata) through the
robot's verifier, layer by layer, through pycose as an independent COSE implementation, and its QR code read
back by OpenCV; and the committed vectors are exactly what their generator writes today."""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import cbor2
import cv2
import pytest
from pycose.keys.curves import P256, Ed25519
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey
from pycose.messages.sign1message import Sign1Message
from zlib_ng import zlib_ng

from models.tickets import (
    MAX_TOKEN_CHARS,
    Assignment,
    TicketFormatError,
    TrustedKey,
    Verdict,
    base45_decode,
    base45_encode,
    claims_to_cbor,
    decode_claims,
    decode_ticket,
    split_code,
    verify_ticket,
)
from tests.vectors.tickets.make_vectors import VECTORS_DIR, claims_from_json, claims_json, write_vectors

# The verdicts reached once the signature has verified and the claims decoded: the result carries the claims.
WITH_CLAIMS: Final = frozenset(
    {
        Verdict.VALID,
        Verdict.KEY_NOT_VALID_AT_ISSUE,
        Verdict.HOLDER_PROOF_MISSING,
        Verdict.BAD_HOLDER_PROOF,
        Verdict.HOLDER_PROOF_STALE,
        Verdict.NOT_YET_VALID,
        Verdict.EXPIRED,
        Verdict.WRONG_TRAIN,
        Verdict.WRONG_DATE,
        Verdict.REVOKED,
        Verdict.ALREADY_USED,
    }
)


def parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    assert value.utcoffset() == dt.timedelta(0), f"{text} is not in UTC"
    return value


@dataclass(frozen=True)
class Vector:
    """One vector file, read: what a verifier is given and what it must answer."""

    name: str
    data: dict[str, Any]

    def layer(self, name: str) -> bytes | None:
        value = self.data[f"{name}_hex"]
        return None if value is None else bytes.fromhex(value)

    @property
    def token(self) -> str:
        token: str = self.data["token"]
        return token

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.data["expected"]["verdict"])

    @property
    def reason(self) -> str:
        reason: str = self.data["expected"]["reason_contains"]
        return reason

    @cached_property
    def trust_entries(self) -> list[dict[str, Any]]:
        return [self.data, *self.data["other_trusted_keys"]]

    @property
    def trust(self) -> list[TrustedKey]:
        return [
            TrustedKey(
                kid=bytes.fromhex(entry["kid_hex"]),
                public_key=bytes.fromhex(entry["public_key_hex"]),
                valid_from=parse_time(entry["valid_from"]),
                valid_to=None if entry["valid_to"] is None else parse_time(entry["valid_to"]),
            )
            for entry in self.trust_entries
        ]

    @property
    def clock(self) -> dt.datetime:
        return parse_time(self.data["clock"])

    @property
    def assignment(self) -> Assignment | None:
        given = self.data["assignment"]
        if given is None:
            return None
        return Assignment(given["train_number"], dt.date.fromisoformat(given["date"]), given["timezone"])

    @property
    def revoked(self) -> set[uuid.UUID]:
        return {uuid.UUID(ticket) for ticket in self.data["revoked"]}

    @property
    def used(self) -> set[uuid.UUID]:
        return {uuid.UUID(ticket) for ticket in self.data["used"]}

    @property
    def clock_tolerance(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.data["clock_tolerance_s"])

    @property
    def holder_window(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.data["holder_window_s"])


def load_vectors() -> list[Vector]:
    paths = sorted(VECTORS_DIR.glob("*.json"))
    assert paths, f"no vectors in {VECTORS_DIR}: run python -m tests.vectors.tickets.make_vectors"
    return [Vector(path.stem, json.loads(path.read_text(encoding="utf-8"))) for path in paths]


VECTORS: Final = load_vectors()
SIGNED = [vector for vector in VECTORS if vector.data["expected_signature"] is not None]
WITH_PNG = [vector for vector in VECTORS if vector.data["png"] is not None]


def by_name(vectors: list[Vector]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("vector", vectors, ids=[vector.name for vector in vectors])


def test_the_vectors_are_what_the_generator_writes(tmp_path: Path) -> None:
    write_vectors(tmp_path)

    def files(directory: Path) -> dict[str, bytes]:
        paths = sorted(directory.glob("*.json")) + sorted(directory.glob("*.png"))
        return {path.name: path.read_bytes() for path in paths}

    committed, fresh = files(VECTORS_DIR), files(tmp_path)
    assert sorted(committed) == sorted(fresh), "run python -m tests.vectors.tickets.make_vectors"
    drifted = [name for name in fresh if committed[name] != fresh[name]]
    assert not drifted, f"{drifted} differ from what the generator writes now"


def test_every_verdict_has_a_vector() -> None:
    verdicts = [vector.verdict for vector in VECTORS]
    assert set(verdicts) == set(Verdict)
    too_large = [vector.reason for vector in VECTORS if vector.verdict is Verdict.TOO_LARGE]
    assert any("decompresses to more than" in reason for reason in too_large)  # a zip bomb
    assert any(reason.startswith("token is") for reason in too_large)  # a token no QR code holds
    assert sum(verdict is Verdict.VALID for verdict in verdicts) >= 4


@by_name(VECTORS)
def test_the_robots_verifier_gives_the_expected_verdict(vector: Vector) -> None:
    result = verify_ticket(
        vector.token,
        trust=vector.trust,
        now=vector.clock,
        clock_tolerance=vector.clock_tolerance,
        assignment=vector.assignment,
        is_revoked=vector.revoked.__contains__,
        is_used=vector.used.__contains__,
        holder_window=vector.holder_window,
    )
    assert result.verdict is vector.verdict, result.reason
    assert vector.reason in result.reason
    if vector.verdict in WITH_CLAIMS:
        assert result.claims == claims_from_json(vector.data["claims"])
    else:
        assert result.claims is None


@by_name(VECTORS)
def test_decode_ticket_decodes_what_the_vector_says(vector: Vector) -> None:
    if not vector.data["expected_decode"]:
        with pytest.raises(TicketFormatError) as raised:
            decode_ticket(split_code(vector.token)[0])
        assert raised.value.verdict is vector.verdict
        return
    decoded = decode_ticket(split_code(vector.token)[0])
    assert decoded.compressed == vector.layer("compressed")
    assert decoded.cose == vector.layer("cose")
    assert decoded.payload == vector.layer("cbor")
    assert decoded.claims == claims_from_json(vector.data["claims"])


def _inflated(compressed: bytes) -> tuple[bytes, bytes] | None:
    """The zlib stream's output and what follows the stream, or None when there is no complete stream."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(compressed)
    except zlib.error:
        return None
    return (out, inflater.unused_data) if inflater.eof else None


def _payload_of(cose: bytes) -> bytes | None:
    """The payload of a COSE_Sign1, read as leniently as a careless decoder would (tag optional, bytes after
    the item ignored), or None when there is none."""
    try:
        item = cbor2.loads(cose)
    except cbor2.CBORDecodeError:
        return None
    parts = item.value if isinstance(item, cbor2.CBORTag) else item
    if isinstance(parts, list) and len(parts) == 4 and type(parts[2]) is bytes:
        return parts[2]
    return None


@by_name(VECTORS)
def test_every_layer_follows_from_the_one_before(vector: Vector) -> None:
    data = vector.data
    proof = data["holder_proof"]
    assert vector.token == data["prefix"] + data["base45"] + (proof["base45"] if proof else "")
    if proof is not None:
        proof_bytes = bytes.fromhex(proof["proof_hex"])
        assert base45_encode(proof_bytes) == proof["base45"]
        assert int.from_bytes(proof_bytes[:4], "big") == proof["numeric_date"]
        assert parse_time(proof["at"]).timestamp() == proof["numeric_date"]

    compressed, cose, cbor = vector.layer("compressed"), vector.layer("cose"), vector.layer("cbor")
    if compressed is None:
        with pytest.raises(ValueError):  # noqa: PT011 - base45_decode raises nothing more specific
            base45_decode(data["base45"])
        assert (cose, cbor, data["claims"], data["zlib"]) == (None, None, None, None)
        return
    assert base45_decode(data["base45"]) == compressed
    assert base45_encode(compressed) == data["base45"]

    inflated = _inflated(compressed)
    if cose is None:
        assert inflated is None
        assert (cbor, data["claims"], data["zlib"]) == (None, None, None)
        return
    assert inflated is not None
    assert inflated[0] == cose
    how = data["zlib"]
    if how is not None:
        appended = bytes.fromhex(how.get("appended_hex", ""))
        assert inflated[1] == appended
        library = {"zlib": zlib.compress, "zlib-ng": zlib_ng.compress}[how["library"]]
        assert library(cose, how["level"]) + appended == compressed

    assert _payload_of(cose) == cbor
    if cbor is None:
        assert data["claims"] is None
        return
    assert claims_json(cbor) == data["claims"]
    for value in data["claims"].values():
        if isinstance(value, dict) and "iso" in value:
            assert parse_time(value["iso"]).timestamp() == value["numeric_date"]
    try:
        claims = decode_claims(cbor)
    except TicketFormatError:
        assert vector.verdict is Verdict.BAD_CLAIMS or not vector.data["expected_decode"]
        return
    assert claims == claims_from_json(data["claims"])
    assert claims_to_cbor(claims) == cbor  # the claims JSON, encoded again, is the payload


@by_name(SIGNED)
def test_pycose_agrees_on_the_signature(vector: Vector) -> None:
    cose = vector.layer("cose")
    assert cose is not None
    if cose[0] != 0xD2:
        cose = b"\xd2" + cose  # pycose decodes only a tagged COSE_Sign1: tag 18 is the one byte d2
    message = Sign1Message.decode(cose)
    message.key = OKPKey(crv=Ed25519, x=bytes.fromhex(vector.data["public_key_hex"]))
    assert message.verify_signature() is vector.data["expected_signature"]


def test_the_es256_vector_carries_a_real_p256_signature() -> None:
    [vector] = [vector for vector in VECTORS if "es256_public_key_hex" in vector.data]
    point = bytes.fromhex(vector.data["es256_public_key_hex"])
    cose = vector.layer("cose")
    assert cose is not None
    message = Sign1Message.decode(cose)
    message.key = EC2Key(crv=P256, x=point[1:33], y=point[33:])
    assert message.verify_signature()
    message.payload = (message.payload or b"") + b"\x00"
    assert not message.verify_signature()


@by_name(WITH_PNG)
def test_the_qr_code_reads_back_as_the_token(vector: Vector) -> None:
    image = cv2.imread(str(VECTORS_DIR / vector.data["png"]), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    _found, texts, _points, _codes = cv2.QRCodeDetectorAruco().detectAndDecodeMulti(image)
    assert tuple(texts) == (vector.token,)


def test_a_vector_without_a_qr_code_says_why() -> None:
    for vector in VECTORS:
        if vector.data["png"] is None:
            assert vector.data["png_note"]
            assert len(vector.token) > MAX_TOKEN_CHARS
