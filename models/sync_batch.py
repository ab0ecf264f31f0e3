"""A robot's sync batch (docs/sync.md, "A batch"): events in a CBOR map, in a COSE_Sign1 signed by the robot.

Pure functions, shared by the robot (which encodes) and the cloud's ingest (which decodes and verifies). The
envelope is the tickets' (`models.cose`): EdDSA, the robot key's kid in the protected header. Each
event's data travels as it sits in the robot's outbox, already CBOR, wrapped in tag 24 ("encoded CBOR data
item", RFC 8949 §3.4.5.1), so batching never re-encodes it. `decode_batch` refuses anything else with a
`BatchRefused` whose `reason` is a short code for the dead-letter table and whose message names the problem.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from models.cbor import load_cbor
from models.cose import CoseError, cose_open, cose_sign, key_id
from models.errors import ModelsError

# Every sync topic is {TOPIC_ROOT}/{robot}/up/... or .../down/... (docs/sync.md, "Topics").
TOPIC_ROOT: Final = "railbot/v1/robots"
EVENT_TYPE_MAX: Final = 40
BATCH_VERSION: Final = 1
MAX_BATCH_BYTES: Final = 256 * 1024
MAX_EVENTS: Final = 500
ENCODED_CBOR_TAG: Final = 24
_EVENT_KEYS: Final = frozenset({"id", "seq", "type", "wall", "mono", "boot", "data"})
_BATCH_KEYS: Final = frozenset({"v", "robot", "batch", "sent", "events"})


def robot_in_topic(topic: str, suffix: str) -> uuid.UUID | None:
    """The robot named in `{TOPIC_ROOT}/{robot}/up/{suffix}`; None for any other topic."""
    parts = topic.removeprefix(f"{TOPIC_ROOT}/").split("/")
    if not topic.startswith(f"{TOPIC_ROOT}/") or parts[1:] != ["up", suffix]:
        return None
    try:
        return uuid.UUID(parts[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class BatchEvent:
    """One event as a batch carries it; `data` is its CBOR (decode with `event_data`)."""

    id: uuid.UUID
    seq: int
    type: str
    wall_ms: int
    mono_ms: int
    boot: uuid.UUID
    data: bytes


@dataclass(frozen=True)
class Batch:
    robot: uuid.UUID
    id: uuid.UUID
    sent_ms: int
    events: tuple[BatchEvent, ...]


class BatchRefused(ModelsError):
    """A payload ingest will not apply: `reason` is a short code (bad_signature, unknown_key, malformed,
    wrong_version, oversized, wrong_robot), the message says what exactly."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode_batch(
    robot: uuid.UUID, batch: uuid.UUID, sent_ms: int, events: Sequence[BatchEvent], key: Ed25519PrivateKey
) -> bytes:
    """The signed payload of `up/batch`."""
    if not 1 <= len(events) <= MAX_EVENTS:
        raise ValueError(f"a batch holds 1 to {MAX_EVENTS} events, not {len(events)}")
    payload = cbor2.dumps(
        {
            "v": BATCH_VERSION,
            "robot": robot.bytes,
            "batch": batch.bytes,
            "sent": sent_ms,
            "events": [
                {
                    "id": e.id.bytes,
                    "seq": e.seq,
                    "type": e.type,
                    "wall": e.wall_ms,
                    "mono": e.mono_ms,
                    "boot": e.boot.bytes,
                    "data": cbor2.CBORTag(ENCODED_CBOR_TAG, e.data),
                }
                for e in events
            ],
        },
        canonical=True,
    )
    signed = cose_sign(payload, key)
    if len(signed) > MAX_BATCH_BYTES:
        raise ValueError(f"batch of {len(signed)} bytes, over {MAX_BATCH_BYTES}: send fewer events")
    return signed


def decode_batch(data: bytes, robot: uuid.UUID, public_key: bytes) -> Batch:
    """Verify and decode a batch that came on `robot`'s topic, against that robot's raw Ed25519 public key."""
    if len(data) > MAX_BATCH_BYTES:
        raise BatchRefused("oversized", f"{len(data)} bytes, over {MAX_BATCH_BYTES}")
    try:
        envelope = cose_open(data)
    except CoseError as err:
        raise BatchRefused("malformed", f"COSE_Sign1: {err.reason}") from err
    if envelope.kid != key_id(public_key):
        raise BatchRefused("unknown_key", f"signed by key {envelope.kid.hex()}, not robot {robot}'s")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(envelope.signature, envelope.to_be_signed())
    except InvalidSignature as err:
        raise BatchRefused(
            "bad_signature", f"the signature does not verify with robot {robot}'s key"
        ) from err
    try:
        # `_batch` checks the type of every value, which refuses a stray break wherever it stands.
        payload = load_cbor(envelope.payload, stray_breaks=False)
    except ValueError as err:
        raise BatchRefused("malformed", f"payload: {err}") from err
    return _batch(payload, robot)


def _batch(payload: object, robot: uuid.UUID) -> Batch:
    if not isinstance(payload, dict) or set(payload) != _BATCH_KEYS:
        keys = sorted(map(str, payload)) if isinstance(payload, dict) else type(payload).__name__
        raise BatchRefused("malformed", f"payload keys {keys}, expected {sorted(_BATCH_KEYS)}")
    if payload["v"] != BATCH_VERSION:
        raise BatchRefused(
            "wrong_version", f"batch version {payload['v']!r}, this cloud reads {BATCH_VERSION}"
        )
    sender = _uuid(payload["robot"], "robot")
    if sender != robot:
        raise BatchRefused("wrong_robot", f"batch of robot {sender} on robot {robot}'s topic")
    events = payload["events"]
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        raise BatchRefused("malformed", f"events must be a list of 1 to {MAX_EVENTS}")
    return Batch(
        robot=sender,
        id=_uuid(payload["batch"], "batch"),
        sent_ms=_int(payload["sent"], "sent"),
        events=tuple(_event(event, n) for n, event in enumerate(events)),
    )


def _event(event: object, n: int) -> BatchEvent:
    if not isinstance(event, dict) or set(event) != _EVENT_KEYS:
        raise BatchRefused("malformed", f"event {n}: keys must be {sorted(_EVENT_KEYS)}")
    data = event["data"]
    if not isinstance(data, cbor2.CBORTag) or data.tag != ENCODED_CBOR_TAG or type(data.value) is not bytes:
        raise BatchRefused("malformed", f"event {n}: data must be encoded CBOR (tag 24)")
    kind = event["type"]
    if not isinstance(kind, str) or not 1 <= len(kind) <= EVENT_TYPE_MAX:
        raise BatchRefused("malformed", f"event {n}: type must be text of 1 to {EVENT_TYPE_MAX} characters")
    return BatchEvent(
        id=_uuid(event["id"], f"event {n} id"),
        seq=_int(event["seq"], f"event {n} seq", low=1),
        type=kind,
        wall_ms=_int(event["wall"], f"event {n} wall"),
        mono_ms=_int(event["mono"], f"event {n} mono"),
        boot=_uuid(event["boot"], f"event {n} boot"),
        data=data.value,
    )


def _uuid(value: object, what: str) -> uuid.UUID:
    if type(value) is not bytes or len(value) != 16:
        raise BatchRefused("malformed", f"{what} must be 16 bytes")
    return uuid.UUID(bytes=value)


def _int(value: object, what: str, low: int = 0) -> int:
    if type(value) is not int or not low <= value < 2**63:
        raise BatchRefused("malformed", f"{what} must be an integer from {low} to 2**63 - 1")
    return value


def event_data(event: BatchEvent) -> Any:
    """An event's data as Python values; raises `BatchRefused` for data that is not one CBOR item."""
    try:
        return load_cbor(event.data)
    except ValueError as err:
        raise BatchRefused("malformed", f"event {event.id} data: {err}") from err
