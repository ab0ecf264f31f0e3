"""The MCU message schema: one table, a stable hash, and payloads that never carry a value out of bounds."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.framing import MAX_PAYLOAD_BYTES
from firmware_bridge.schema import (
    BY_NAME,
    MESSAGES,
    SCHEMA_HASH,
    Delivery,
    Message,
    PayloadError,
    decode_payload,
    encode_payload,
    schema_text,
)
from firmware_bridge.vectors import load_vectors

VECTORS = load_vectors()
# Pinned: a change to any message changes the hash, and old firmware then refuses the host at the handshake.
# Change it together with the table, PROTOCOL.md and vectors.json, never alone.
PINNED_SCHEMA_HASH = 0x1F3C3909


def test_the_schema_hash_is_pinned() -> None:
    assert SCHEMA_HASH == PINNED_SCHEMA_HASH, f"schema changed: hash now {SCHEMA_HASH:#010x}\n{schema_text()}"


def test_ids_and_names_are_unique_and_sequencing_is_as_documented() -> None:
    assert len({m.type_id for m in MESSAGES}) == len({m.name for m in MESSAGES}) == len(MESSAGES)
    reliable = {m.name for m in MESSAGES if m.delivery is Delivery.RELIABLE}
    assert reliable == {
        "GATE_PULSE",
        "LIGHTS",
        "BUZZER",
        "COMPARTMENT_UNLOCK",
        "DRIVE",
        "STOP",
        "CARD_READ",
        "ESTOP",
        "GATE_STATE",
        "COMPARTMENT_STATE",
        "FAULT",
    }


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.name)
def test_the_largest_payload_fits_a_frame(message: Message) -> None:
    tail = message.tail
    largest = struct.calcsize(message.fixed_format) + (1 + tail.bounds()[1] if tail else 0)
    assert largest <= MAX_PAYLOAD_BYTES


def values_for(message: Message) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in message.fields:
        low, high = field.bounds()
        fields[field.name] = (
            st.binary(min_size=low, max_size=high) if field.code == "s" else st.integers(low, high)
        )
    return st.fixed_dictionaries(fields)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.name)
def test_every_message_round_trips(message: Message) -> None:
    @given(values_for(message))
    def round_trip(values: dict[str, Any]) -> None:
        assert decode_payload(message, encode_payload(message, values)) == values

    round_trip()


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["frames"] if "message" in v], ids=lambda v: v["name"]
)  # the others are framing-only (type 0x7F is no message)
def test_frame_vectors_decode_to_their_fields(vector: dict[str, Any]) -> None:
    message = BY_NAME[vector["message"]]
    assert vector["type"] == message.type_id
    decoded = decode_payload(message, bytes.fromhex(vector["payload_hex"]))
    assert {k: v.hex() if isinstance(v, bytes) else v for k, v in decoded.items()} == vector["fields"]


@pytest.mark.parametrize(
    "vector", VECTORS["bad_payloads"], ids=lambda v: f"{v['message']} {v['payload_hex']}"
)
def test_bad_payload_vectors_are_refused_naming_the_field(vector: dict[str, Any]) -> None:
    message = BY_NAME[vector["message"]]
    with pytest.raises(PayloadError) as refused:
        decode_payload(message, bytes.fromhex(vector["payload_hex"]))
    if vector["field"] is not None:
        assert f"{message.name}.{vector['field']}" in str(refused.value)


def test_bounds_are_checked_before_sending() -> None:
    gate = BY_NAME["GATE_PULSE"]
    with pytest.raises(PayloadError, match=r"GATE_PULSE.ms: value 10001 is outside 1..10000"):
        encode_payload(gate, {"ms": 10_001})
    with pytest.raises(PayloadError, match=r"takes fields \['ms'\]"):
        encode_payload(gate, {"ms": 5, "extra": 1})
    with pytest.raises(PayloadError, match="an integer expected"):
        encode_payload(gate, {"ms": True})
    card = BY_NAME["CARD_READ"]
    with pytest.raises(PayloadError, match=r"CARD_READ.uid: length 3 is outside 4..10"):
        encode_payload(card, {"event_seq": 1, "uptime_ms": 1, "reader": 0, "uid": b"abc"})


@given(st.sampled_from(MESSAGES), st.binary(max_size=MAX_PAYLOAD_BYTES))
def test_random_payloads_decode_within_bounds_or_are_refused(message: Message, payload: bytes) -> None:
    try:
        values = decode_payload(message, payload)
    except PayloadError:
        return
    assert encode_payload(message, values) == payload
