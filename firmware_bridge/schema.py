"""Every message on the link: its type id, direction, delivery, and payload layout with each field's bounds.

This table is the protocol's single source (PROTOCOL.md §4 prints it); `SCHEMA_HASH` is computed from it, so
host and firmware built from different tables refuse each other at the handshake. Payloads are packed
little-endian with no padding; a message may end in one variable-length byte string, sent as a length byte
and the bytes. `encode_payload` and `decode_payload` check every bound both ways: a value out of its bounds
is never sent and never taken.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from firmware_bridge.framing import MAX_PAYLOAD_BYTES

PROTO_MAJOR: Final = 1
PROTO_MINOR: Final = 0

# A message's payload by field name, as `decode_payload` gives it and the host and MCU ends pass it on.
Fields = dict[str, int | bytes]


class Direction(enum.StrEnum):
    HOST_TO_MCU = "host_to_mcu"
    MCU_TO_HOST = "mcu_to_host"
    BOTH = "both"


class Delivery(enum.StrEnum):
    """RELIABLE: sequenced, acknowledged and retransmitted. UNSEQUENCED: seq 0, sent again by its own timer
    or request when lost (hello, heartbeat, ack, status, reply)."""

    RELIABLE = "reliable"
    UNSEQUENCED = "unsequenced"


# struct codes and their ranges; "s" is the variable-length tail (length byte, then the bytes).
_RANGES: Final = {
    "B": (0, 0xFF),
    "H": (0, 0xFFFF),
    "I": (0, 0xFFFF_FFFF),
    "b": (-0x80, 0x7F),
    "h": (-0x8000, 0x7FFF),
    "i": (-0x8000_0000, 0x7FFF_FFFF),
}


@dataclass(frozen=True)
class Field:
    """One payload field: its struct code and the values it may carry (inclusive); for a tail (`"s"`),
    the bounds are its length."""

    name: str
    code: str
    low: int | None = None
    high: int | None = None

    def bounds(self) -> tuple[int, int]:
        return self.limits

    @functools.cached_property
    def limits(self) -> tuple[int, int]:
        natural = (0, MAX_PAYLOAD_BYTES) if self.code == "s" else _RANGES[self.code]
        return (
            natural[0] if self.low is None else self.low,
            natural[1] if self.high is None else self.high,
        )


@dataclass(frozen=True)
class Message:
    type_id: int
    name: str
    direction: Direction
    delivery: Delivery
    fields: tuple[Field, ...] = ()
    doc: str = ""

    @functools.cached_property
    def fixed_format(self) -> str:
        return "<" + "".join(f.code for f in self.fields if f.code != "s")

    @functools.cached_property
    def fixed(self) -> struct.Struct:
        return struct.Struct(self.fixed_format)

    @functools.cached_property
    def fixed_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.code != "s")

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)

    @functools.cached_property
    def tail(self) -> Field | None:
        return self.fields[-1] if self.fields and self.fields[-1].code == "s" else None


class ReplyResult(enum.IntEnum):
    """What a command came to, in its REPLY."""

    OK = 0
    REFUSED_ESTOP = 1  # the e-stop is pressed: no actuator moves
    BAD_ARGUMENTS = 2  # a field out of its bounds, or a payload of the wrong size
    UNKNOWN_TYPE = 3
    NOT_LINKED = 4  # a command before the handshake
    FAULT = 5  # the device reports a fault


class GateState(enum.IntEnum):
    CLOSED = 0
    OPENING = 1
    OPEN = 2
    CLOSING = 3
    FAULT = 4


class CompartmentState(enum.IntEnum):
    LOCKED = 0
    UNLOCKED = 1
    OPEN = 2


class LightPattern(enum.IntEnum):
    OFF = 0
    SOLID = 1
    BLINK = 2
    PULSE = 3


class Output(enum.IntFlag):
    """Bits of STATUS.outputs: which actuators are driven right now."""

    GATE = 0x01
    LIGHTS = 0x02
    BUZZER = 0x04
    DRIVE = 0x08
    COMPARTMENT = 0x10  # any compartment unlocked
    FAULT_LIGHT = 0x20  # the safe state's fault light


class Cap(enum.IntFlag):
    """Bits of HELLO_ACK.caps: the devices this board has."""

    GATE = 0x01
    LIGHTS = 0x02
    BUZZER = 0x04
    COMPARTMENTS = 0x08
    DRIVE = 0x10
    CARD_READER = 0x20
    ESTOP = 0x40


GATE_PULSE_MAX_MS: Final = 10_000
DRIVE_DEADLINE_MAX_MS: Final = 500
DRIVE_SPEED_MAX_MM_S: Final = 1_500
COMPARTMENTS: Final = 8
CARD_UID_BYTES: Final = (4, 10)  # ISO 14443-A UIDs: single, double or triple size

_EVENT_HEAD: Final = (Field("event_seq", "I"), Field("uptime_ms", "I"))
_H, _M, _B = Direction.HOST_TO_MCU, Direction.MCU_TO_HOST, Direction.BOTH
_R, _U = Delivery.RELIABLE, Delivery.UNSEQUENCED

MESSAGES: Final[tuple[Message, ...]] = (
    Message(0x01, "HELLO", _H, _U, (
        Field("proto_major", "B"), Field("proto_minor", "B"), Field("schema_hash", "I"), Field("nonce", "I"),
    ), "Starts (or restarts) the link; both sides reset their sequence numbers."),
    Message(0x02, "HELLO_ACK", _M, _U, (
        Field("proto_major", "B"), Field("proto_minor", "B"), Field("schema_hash", "I"), Field("nonce", "I"),
        Field("fw_version", "I"), Field("board_id", "I"), Field("boot_id", "I"), Field("caps", "I"),
    ), "The MCU's answer, echoing the nonce; boot_id is new at every MCU start."),
    Message(0x03, "HEARTBEAT", _H, _U, (),
            "Every 100 ms; 500 ms without any valid frame puts the MCU in its safe state."),
    Message(0x04, "ACK", _B, _U, (), "Carries only the ack field, when nothing else is going out."),
    Message(0x05, "STATUS", _M, _U, (
        Field("boot_id", "I"), Field("uptime_ms", "I"), Field("last_event_seq", "I"),
        Field("gate", "B", 0, max(GateState)), Field("estop", "B", 0, 1), Field("outputs", "H"),
        Field("faults", "H"), Field("linked", "B", 0, 1),
    ), "A 10 Hz snapshot, so the host recovers state even after a lost event."),
    Message(0x06, "REPLY", _M, _U, (
        Field("cmd_seq", "B", 1, 0xFF), Field("result", "B", 0, max(ReplyResult)),
    ), "The outcome of the command with that seq; repeated from a cache when the command comes again."),
    Message(0x07, "NAK", _B, _U, (), "A damaged frame was thrown away: send again what is in flight."),
    Message(0x10, "GATE_PULSE", _H, _R, (Field("ms", "H", 1, GATE_PULSE_MAX_MS),),
            "Open the gate for ms milliseconds, then close it."),
    Message(0x11, "LIGHTS", _H, _R, (
        Field("pattern", "B", 0, max(LightPattern)),
        Field("red", "B"), Field("green", "B"), Field("blue", "B"), Field("ms", "H", 1, 60_000),
    ), "Show a pattern for ms milliseconds."),
    Message(0x12, "BUZZER", _H, _R, (Field("freq_hz", "H", 100, 8_000), Field("ms", "H", 1, 5_000)),
            "Sound for ms milliseconds."),
    Message(0x13, "COMPARTMENT_UNLOCK", _H, _R, (
        Field("index", "B", 0, COMPARTMENTS - 1), Field("ms", "H", 1, 30_000),
    ), "Unlock a compartment for ms milliseconds; it locks again when closed after that."),
    Message(0x14, "DRIVE", _H, _R, (
        Field("left_mm_s", "h", -DRIVE_SPEED_MAX_MM_S, DRIVE_SPEED_MAX_MM_S),
        Field("right_mm_s", "h", -DRIVE_SPEED_MAX_MM_S, DRIVE_SPEED_MAX_MM_S),
        Field("deadline_ms", "H", 1, DRIVE_DEADLINE_MAX_MS),
    ), "Wheel speeds until the deadline; the motors stop then unless a new DRIVE came."),
    Message(0x15, "STOP", _H, _R, (), "Every actuator to its safe state now."),
    Message(0x20, "CARD_READ", _M, _R, (
        *_EVENT_HEAD, Field("reader", "B"), Field("uid", "s", *CARD_UID_BYTES),
    ), "A card was tapped on a reader."),
    Message(0x21, "ESTOP", _M, _R, (*_EVENT_HEAD, Field("pressed", "B", 0, 1)),
            "The e-stop was pressed or released."),
    Message(0x22, "GATE_STATE", _M, _R, (*_EVENT_HEAD, Field("state", "B", 0, max(GateState))),
            "The gate moved."),
    Message(0x23, "COMPARTMENT_STATE", _M, _R, (
        *_EVENT_HEAD, Field("index", "B", 0, COMPARTMENTS - 1), Field("state", "B", 0, max(CompartmentState)),
    ), "A compartment was unlocked, opened, closed or locked."),
    Message(0x24, "FAULT", _M, _R, (*_EVENT_HEAD, Field("code", "H"), Field("active", "B", 0, 1)),
            "A fault appeared or cleared."),
)  # fmt: skip

BY_ID: Final[Mapping[int, Message]] = MappingProxyType({m.type_id: m for m in MESSAGES})
BY_NAME: Final[Mapping[str, Message]] = MappingProxyType({m.name: m for m in MESSAGES})


def schema_text() -> str:
    """The schema as canonical text, one line a message: what `SCHEMA_HASH` is computed from."""
    lines = [f"railbot-mcu {PROTO_MAJOR}"]
    for m in MESSAGES:
        fields = ",".join(f"{f.name}:{f.code}:{f.bounds()[0]}:{f.bounds()[1]}" for f in m.fields)
        lines.append(f"{m.type_id:#04x} {m.name} {m.direction.value} {m.delivery.value} {fields}")
    return "\n".join(lines) + "\n"


SCHEMA_HASH: Final = int.from_bytes(hashlib.sha256(schema_text().encode()).digest()[:4], "little")


class PayloadError(ValueError):
    """A payload that does not fit its message's layout or bounds; says which field and why."""


def _check(message: Message, field: Field, value: int) -> None:
    low, high = field.limits
    if not low <= value <= high:
        what = "length" if field.code == "s" else "value"
        raise PayloadError(f"{message.name}.{field.name}: {what} {value} is outside {low}..{high}")


def encode_payload(message: Message, values: Mapping[str, int | bytes]) -> bytes:
    """Pack `values` (every field, by name) after checking each against its bounds."""
    if values.keys() != message.names:
        names = [f.name for f in message.fields]
        raise PayloadError(f"{message.name} takes fields {names}, got {sorted(values)}")
    numbers: list[int] = []
    for field in message.fixed_fields:
        value = values[field.name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise PayloadError(f"{message.name}.{field.name}: an integer expected")
        _check(message, field, value)
        numbers.append(value)
    tail = message.tail
    if tail is not None:
        data = values[tail.name]
        if not isinstance(data, bytes):
            raise PayloadError(f"{message.name}.{tail.name}: bytes expected")
        _check(message, tail, len(data))
    payload = message.fixed.pack(*numbers)
    if tail is not None:
        data = values[tail.name]
        assert isinstance(data, bytes)
        payload += bytes((len(data),)) + data
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"{message.name}: payload of {len(payload)} bytes, the most is {MAX_PAYLOAD_BYTES}"
        )
    return payload


def decode_payload(message: Message, payload: bytes) -> Fields:
    """Unpack a payload and check every field's bounds; raises `PayloadError` naming the first problem."""
    fixed = message.fixed.size
    tail = message.tail
    if tail is None and len(payload) != fixed:
        raise PayloadError(f"{message.name}: payload of {len(payload)} bytes, expected {fixed}")
    if tail is not None and len(payload) < fixed + 1:
        raise PayloadError(f"{message.name}: payload of {len(payload)} bytes, expected at least {fixed + 1}")
    numbers = message.fixed.unpack_from(payload)
    values: Fields = {}
    for field, number in zip(message.fixed_fields, numbers, strict=True):
        _check(message, field, number)
        values[field.name] = number
    if tail is not None:
        length = payload[fixed]
        data = payload[fixed + 1 :]
        if len(data) != length:
            raise PayloadError(
                f"{message.name}.{tail.name}: length byte says {length}, {len(data)} bytes follow"
            )
        _check(message, tail, length)
        values[tail.name] = bytes(data)
    return values
