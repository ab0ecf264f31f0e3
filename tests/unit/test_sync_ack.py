"""The batch ack: the typed codec writes the bytes ingest has always published and reads them back, reads what
it needs from any version, and names what is not an ack."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.sync_ack import AckRefused, AckStatus, BatchAck, decode_ack, encode_ack

BATCH = uuid.UUID("0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10")
counts = st.integers(min_value=0, max_value=2**63 - 1)


def published_before(ack: dict[str, Any]) -> bytes:
    """What ingest published before the ack was typed: its dict through `ingest_worker._json`."""
    return json.dumps(ack, separators=(",", ":")).encode()


def test_the_documented_acks_are_these_bytes() -> None:
    committed = BatchAck(BATCH, AckStatus.COMMITTED, applied=37, skipped=3, first_seq=120, last_seq=159)
    dead = BatchAck(BATCH, AckStatus.DEAD_LETTER, reason='malformed: event 0 data: ünïcode "quoted"')
    assert encode_ack(committed) == (
        b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":"committed",'
        b'"applied":37,"skipped":3,"first_seq":120,"last_seq":159}'
    )
    assert encode_ack(dead) == (
        b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":"dead_letter",'
        b'"reason":"malformed: event 0 data: \\u00fcn\\u00efcode \\"quoted\\""}'
    )
    assert decode_ack(encode_ack(committed)) == committed
    assert decode_ack(encode_ack(dead)) == dead


@given(st.uuids(), counts, counts, counts, counts)
def test_a_committed_ack_is_the_bytes_ingest_published_before(
    batch: uuid.UUID, applied: int, skipped: int, first_seq: int, last_seq: int
) -> None:
    before = published_before(
        {
            "batch": str(batch),
            "status": "committed",
            "applied": applied,
            "skipped": skipped,
            "first_seq": first_seq,
            "last_seq": last_seq,
        }
    )
    ack = BatchAck(batch, AckStatus.COMMITTED, "", applied, skipped, first_seq, last_seq)
    assert encode_ack(ack) == before
    assert decode_ack(before) == ack
    assert ack.committed


@given(st.uuids(), st.text(max_size=300))
def test_a_dead_letter_ack_is_the_bytes_ingest_published_before(batch: uuid.UUID, reason: str) -> None:
    before = published_before({"batch": str(batch), "status": "dead_letter", "reason": reason})
    ack = BatchAck(batch, AckStatus.DEAD_LETTER, reason=reason)
    assert encode_ack(ack) == before
    assert decode_ack(before) == ack
    assert not ack.committed


def test_it_takes_what_the_robot_needs_from_any_version() -> None:
    # A sender that names only the batch and the status, and one that adds a key this version does not know.
    minimal = decode_ack(b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":"committed"}')
    assert minimal == BatchAck(BATCH, AckStatus.COMMITTED)
    newer = decode_ack(
        b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":"dead_letter","reason":"r","by":"w2"}'
    )
    assert newer == BatchAck(BATCH, AckStatus.DEAD_LETTER, reason="r")
    assert decode_ack(b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":"dead_letter"}').reason == ""


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"while offline", "not an ack: Expecting value"),
        (b"\xff", "not an ack: 'utf-8' codec can't decode"),
        (b"[1]", "not an ack: a JSON list, not an object"),
        (b"{}", "not an ack: no 'batch'"),
        (b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10"}', "not an ack: no 'status'"),
        (b'{"batch":5,"status":"committed"}', "not an ack: batch 5 is not a UUID"),
        (b'{"batch":"b1","status":"committed"}', "not an ack: batch 'b1' is not a UUID"),
        (b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":"maybe"}', "ack status 'maybe'"),
        (
            b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":["committed"]}',
            "ack status ['committed']",
        ),
        (
            b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":"dead_letter","reason":7}',
            "ack reason is a JSON int, not text",
        ),
        (
            b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":"committed","applied":-1}',
            "ack applied is -1, not a whole number",
        ),
        (
            b'{"batch":"0190f0a5-7b4c-7c3e-9d2a-5b6c7d8e9f10","status":"committed","skipped":true}',
            "ack skipped is True, not a whole number",
        ),
    ],
)
def test_what_is_not_an_ack_is_named(payload: bytes, problem: str) -> None:
    with pytest.raises(AckRefused) as refused:
        decode_ack(payload)
    assert str(refused.value).startswith(problem)
    assert "\n" not in str(refused.value)
