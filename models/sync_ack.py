"""The cloud's answer to one batch on `down/ack` (docs/sync.md, "The acknowledgement rule"): a JSON object.

Pure functions, shared by the cloud's ingest (which encodes) and the robot's sender (which decodes and deletes
or sets aside the batch's events). The bytes are those every version of ingest has published:
`{"batch":"<uuid>","status":"committed","applied":37,"skipped":3,"first_seq":120,"last_seq":159}` or
`{"batch":"<uuid>","status":"dead_letter","reason":"..."}`, compact, in that order. `decode_ack` needs only
what the robot acts on (the batch, the status, a dead letter's reason) and ignores keys it does not know, so
robots and clouds of different versions read each other; it refuses anything else with an `AckRefused`
naming the problem.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from models.errors import ModelsError

_COUNTS: Final = ("applied", "skipped", "first_seq", "last_seq")


class AckStatus(StrEnum):
    COMMITTED = "committed"  # the batch's events are in the cloud's database: delete them
    DEAD_LETTER = "dead_letter"  # the cloud will never take the batch: set its events aside with the reason


_STATUSES: Final = tuple(status.value for status in AckStatus)


@dataclass(frozen=True)
class BatchAck:
    """The ack of one batch. A `committed` ack from ingest carries its counts; `reason` is a dead letter's."""

    batch: uuid.UUID
    status: AckStatus
    reason: str = ""
    applied: int | None = None  # events applied now
    skipped: int | None = None  # events the cloud had already applied (a batch sent again)
    first_seq: int | None = None
    last_seq: int | None = None

    @property
    def committed(self) -> bool:
        return self.status is AckStatus.COMMITTED


class AckRefused(ModelsError):
    """A `down/ack` payload that is not an ack; the message says what is wrong."""


def encode_ack(ack: BatchAck) -> bytes:
    """The payload of `down/ack`."""
    message: dict[str, object] = {"batch": str(ack.batch), "status": ack.status.value}
    if ack.committed:
        message.update((name, getattr(ack, name)) for name in _COUNTS if getattr(ack, name) is not None)
    else:
        message["reason"] = ack.reason
    return json.dumps(message, separators=(",", ":")).encode()


def decode_ack(payload: bytes) -> BatchAck:
    """The ack in a `down/ack` payload; raises `AckRefused`."""
    try:
        message = json.loads(payload)
    except ValueError as err:  # UnicodeDecodeError too
        raise AckRefused(f"not an ack: {err}") from err
    if not isinstance(message, dict):
        raise AckRefused(f"not an ack: a JSON {type(message).__name__}, not an object")
    try:
        batch = uuid.UUID(message["batch"])
        status = message["status"]
    except KeyError as err:
        raise AckRefused(f"not an ack: no {err}") from err
    except (ValueError, TypeError, AttributeError) as err:  # AttributeError: uuid.UUID(5)
        raise AckRefused(f"not an ack: batch {message['batch']!r:.60} is not a UUID") from err
    if status not in _STATUSES:
        raise AckRefused(f"ack status {status!r:.60}")
    if status == AckStatus.DEAD_LETTER:
        reason = message.get("reason", "")
        if not isinstance(reason, str):
            raise AckRefused(f"ack reason is a JSON {type(reason).__name__}, not text")
        return BatchAck(batch, AckStatus.DEAD_LETTER, reason=reason)
    applied, skipped, first_seq, last_seq = (_count(message, name) for name in _COUNTS)
    return BatchAck(batch, AckStatus.COMMITTED, "", applied, skipped, first_seq, last_seq)


def _count(message: dict[str, object], name: str) -> int | None:
    value = message.get(name)
    if value is not None and (type(value) is not int or value < 0):
        raise AckRefused(f"ack {name} is {value!r:.60}, not a whole number")
    return value
