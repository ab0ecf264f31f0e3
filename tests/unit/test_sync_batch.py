"""Sync batches: what the robot signs is what ingest reads, and everything else is refused with a reason."""

from __future__ import annotations

import uuid

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.keys.curves import Ed25519
from pycose.keys.okp import OKPKey
from pycose.messages.sign1message import Sign1Message

from models.cose import cose_sign
from models.sync_batch import (
    MAX_BATCH_BYTES,
    MAX_EVENTS,
    Batch,
    BatchEvent,
    BatchRefused,
    decode_batch,
    encode_batch,
    event_data,
)

ROBOT = uuid.UUID("6f1c1a9e-3d2b-4f0e-9a51-7a0b5f3c2d10")
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key().public_bytes_raw()


def event(seq: int, data: object = None) -> BatchEvent:
    return BatchEvent(
        id=uuid.UUID(int=seq),
        seq=seq,
        type="purchase",
        wall_ms=1_796_000_000_000 + seq,
        mono_ms=5_000 + seq,
        boot=uuid.UUID(int=99),
        data=cbor2.dumps(data if data is not None else {"n": seq, "user": uuid.UUID(int=seq)}),
    )


def test_a_batch_round_trips_and_keeps_each_events_cbor_as_it_was() -> None:
    events = tuple(event(n) for n in range(1, 4))
    signed = encode_batch(ROBOT, uuid.UUID(int=1), 1_796_000_000_123, events, KEY)
    batch = decode_batch(signed, ROBOT, PUBLIC)
    assert batch == Batch(ROBOT, uuid.UUID(int=1), 1_796_000_000_123, events)
    assert event_data(batch.events[1]) == {"n": 2, "user": uuid.UUID(int=2)}


def test_an_independent_cose_library_verifies_a_batch() -> None:
    signed = encode_batch(ROBOT, uuid.UUID(int=1), 1, (event(1),), KEY)
    message = Sign1Message.decode(signed)
    message.key = OKPKey(crv=Ed25519, x=PUBLIC)
    assert message.verify_signature()
    assert message.payload is not None
    payload = cbor2.loads(message.payload)
    assert payload["robot"] == ROBOT.bytes
    assert payload["events"][0]["data"].tag == 24


def refused(data: bytes, reason: str, robot: uuid.UUID = ROBOT, public: bytes = PUBLIC) -> BatchRefused:
    with pytest.raises(BatchRefused) as caught:
        decode_batch(data, robot, public)
    assert caught.value.reason == reason, str(caught.value)
    return caught.value


def test_another_robots_key_or_a_changed_byte_is_refused() -> None:
    signed = encode_batch(ROBOT, uuid.UUID(int=1), 1, (event(1),), KEY)
    other = Ed25519PrivateKey.generate()
    assert "not robot" in str(refused(signed, "unknown_key", public=other.public_key().public_bytes_raw()))
    forged = encode_batch(ROBOT, uuid.UUID(int=1), 1, (event(1),), other)
    # The forger put the right kid in: only the signature tells.
    envelope_kid_swapped = forged.replace(
        forged[forged.index(bytes.fromhex("48")) + 1 : forged.index(bytes.fromhex("48")) + 9],
        signed[signed.index(bytes.fromhex("48")) + 1 : signed.index(bytes.fromhex("48")) + 9],
    )
    refused(envelope_kid_swapped, "bad_signature")
    tampered = bytearray(signed)
    tampered[-70] ^= 0x01  # inside the payload
    refused(bytes(tampered), "bad_signature")


def test_a_batch_on_another_robots_topic_is_refused() -> None:
    signed = encode_batch(ROBOT, uuid.UUID(int=1), 1, (event(1),), KEY)
    assert "on robot" in str(refused(signed, "wrong_robot", robot=uuid.UUID(int=5)))


def sign_payload(payload: object) -> bytes:
    return cose_sign(cbor2.dumps(payload), KEY)


def good_payload() -> dict[str, object]:
    return {
        "v": 1,
        "robot": ROBOT.bytes,
        "batch": uuid.UUID(int=1).bytes,
        "sent": 1,
        "events": [
            {
                "id": uuid.UUID(int=1).bytes,
                "seq": 1,
                "type": "purchase",
                "wall": 1,
                "mono": 1,
                "boot": uuid.UUID(int=2).bytes,
                "data": cbor2.CBORTag(24, cbor2.dumps({})),
            }
        ],
    }


@pytest.mark.parametrize(
    ("change", "reason", "says"),
    [
        (lambda p: p.update(v=2), "wrong_version", "batch version 2"),
        (lambda p: p.pop("sent"), "malformed", "payload keys"),
        (lambda p: p.update(events=[]), "malformed", "events must be a list"),
        (lambda p: p["events"][0].update(seq=0), "malformed", "event 0 seq"),
        (lambda p: p["events"][0].update(seq="1"), "malformed", "event 0 seq"),
        (lambda p: p["events"][0].update(id=b"short"), "malformed", "event 0 id must be 16 bytes"),
        (lambda p: p["events"][0].update(data={"not": "tagged"}), "malformed", "tag 24"),
        (lambda p: p["events"][0].update(type=""), "malformed", "type must be text"),
        (lambda p: p.update(robot=uuid.UUID(int=3).bytes), "wrong_robot", "batch of robot"),
    ],
)
def test_malformed_payloads_are_refused_naming_the_problem(change: object, reason: str, says: str) -> None:
    payload = good_payload()
    change(payload)  # type: ignore[operator]
    assert says in str(refused(sign_payload(payload), reason))


def test_size_limits() -> None:
    refused(b"\x00" * (MAX_BATCH_BYTES + 1), "oversized")
    with pytest.raises(ValueError, match="1 to 500 events"):
        encode_batch(ROBOT, uuid.UUID(int=1), 1, tuple(event(n) for n in range(1, MAX_EVENTS + 2)), KEY)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_random_bytes_are_refused_never_crash(data: bytes) -> None:
    with pytest.raises(BatchRefused):
        decode_batch(data, ROBOT, PUBLIC)


SENTINEL = "STRAYBREAK"  # encoded as 0x6a + 10 bytes; swapped for a lone 0xff below


@pytest.mark.parametrize(
    ("place", "reason"),
    [
        (lambda p: p.update(v=SENTINEL), "wrong_version"),
        (lambda p: p.update(sent=SENTINEL), "malformed"),
        (lambda p: p.update(robot=SENTINEL), "malformed"),
        (lambda p: p["events"][0].update(type=SENTINEL), "malformed"),
        (lambda p: p["events"][0].update(seq=SENTINEL), "malformed"),
        (lambda p: p["events"][0].update(data=SENTINEL), "malformed"),
        (lambda p: p["events"].append(SENTINEL), "malformed"),
    ],
)
def test_a_stray_break_anywhere_in_a_batch_is_refused(place: object, reason: str) -> None:
    """Decoding a batch skips the walk that looks for break bytes outside an indefinite item: the batch's own
    checks refuse one wherever it stands, since no field takes a break marker."""
    payload = good_payload()
    place(payload)  # type: ignore[operator]
    encoded = cbor2.dumps(payload).replace(b"\x6a" + SENTINEL.encode(), b"\xff")
    assert refused(cose_sign(encoded, KEY), reason)
