"""Test vectors of the MCU protocol, in `vectors.json` beside this module, for every implementation.

The JSON is the contract (PROTOCOL.md §6 says what each section means): the Python codec and the C codec
(`firmware_bridge/c/`) are tested against it. `python -m firmware_bridge.vectors --write` regenerates it from
the cases listed here, after a deliberate change; the tests fail while file and cases disagree.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from firmware_bridge.framing import (
    MAX_PAYLOAD_BYTES,
    Frame,
    FrameDecoder,
    Rejected,
    cobs_encode,
    crc16,
    encode_frame,
)
from firmware_bridge.schema import BY_NAME, decode_payload, encode_payload

VECTORS_PATH: Final = Path(__file__).with_name("vectors.json")

_CRC_INPUTS: Final = (b"123456789", b"", b"\x00", b"\xff\xff", bytes(range(64)))
_COBS_INPUTS: Final = (
    b"",
    b"\x00",
    b"\x00\x00",
    b"\x11\x22\x00\x33",
    b"\x11\x22\x33\x44",
    b"\x11\x00\x00\x00",
    bytes(range(1, 255)),
    bytes(range(0, 255)),
    bytes(range(1, 256)),
)
# (name, message, seq, ack, fields)
_MESSAGES: Final[tuple[tuple[str, str, int, int, dict[str, int | bytes]], ...]] = (
    ("hello", "HELLO", 0, 0, {"proto_major": 1, "proto_minor": 0, "schema_hash": 0x12345678, "nonce": 7}),
    ("heartbeat acking event 9", "HEARTBEAT", 0, 9, {}),
    ("gate pulse 1500 ms", "GATE_PULSE", 1, 0, {"ms": 1500}),
    ("gate pulse at seq 255", "GATE_PULSE", 255, 17, {"ms": 10_000}),
    ("drive backwards", "DRIVE", 42, 3, {"left_mm_s": -300, "right_mm_s": -300, "deadline_ms": 200}),
    ("lights with zero bytes", "LIGHTS", 5, 0, {"pattern": 1, "red": 0, "green": 255, "blue": 0, "ms": 256}),
    ("reply ok to seq 42", "REPLY", 0, 0, {"cmd_seq": 42, "result": 0}),
    (
        "card read, 7-byte uid",
        "CARD_READ",
        3,
        12,
        {"event_seq": 1001, "uptime_ms": 65_536, "reader": 0, "uid": bytes.fromhex("04a1b2c3d4e5f6")},
    ),
    (
        "status",
        "STATUS",
        0,
        42,
        {
            "boot_id": 0xDEADBEEF,
            "uptime_ms": 123_456,
            "last_event_seq": 1001,
            "gate": 0,
            "estop": 1,
            "outputs": 0x20,
            "faults": 0,
            "linked": 1,
        },
    ),
)


def _frame_entry(frame: Frame) -> dict[str, Any]:
    return {"seq": frame.seq, "ack": frame.ack, "type": frame.type, "payload_hex": frame.payload.hex()}


def _result_entry(result: Frame | Rejected) -> dict[str, Any]:
    if isinstance(result, Frame):
        return {"frame": _frame_entry(result)}
    return {"reject": result.reject.value}


def _hex_payload(values: dict[str, int | bytes]) -> dict[str, int | str]:
    return {k: v.hex() if isinstance(v, bytes) else v for k, v in values.items()}


def build_vectors() -> dict[str, Any]:
    """Every vector, computed by this package's codec from the cases above."""
    frames = []
    for name, message_name, seq, ack, fields in _MESSAGES:
        message = BY_NAME[message_name]
        frame = Frame(seq, ack, message.type_id, encode_payload(message, fields))
        frames.append(
            {
                "name": name,
                "wire_hex": encode_frame(frame).hex(),
                **_frame_entry(frame),
                "message": message_name,
                "fields": _hex_payload(decode_payload(message, frame.payload)),
            }
        )
    largest = Frame(7, 7, 0x7F, bytes((n * 37) % 256 for n in range(MAX_PAYLOAD_BYTES)))
    frames.append(
        {"name": "largest body (64 bytes)", "wire_hex": encode_frame(largest).hex(), **_frame_entry(largest)}
    )

    good = encode_frame(
        Frame(1, 0, BY_NAME["GATE_PULSE"].type_id, encode_payload(BY_NAME["GATE_PULSE"], {"ms": 1500}))
    )
    flipped = bytearray(good)
    flipped[4] ^= 0x10 if flipped[4] != 0x10 else 0x01  # a flip to 0x00 would be a delimiter, not a bad CRC
    short_body = cobs_encode(b"\x01\x02")
    bad = [
        ("one bit flipped", bytes(flipped), "bad_crc"),
        ("body of 2 bytes", b"\x00" + short_body + b"\x00", "too_short"),
        ("code byte runs past the end", bytes.fromhex("0005010203") + b"\x00", "bad_cobs"),
        ("70 bytes between delimiters", b"\x00" + b"\x01" * 70 + b"\x00", "too_long"),
        ("largest body plus one byte", b"\x00" + cobs_encode(largest.body() + b"\x00") + b"\x00", "too_long"),
    ]
    bad_frames = []
    for name, wire, reject in bad:
        results = FrameDecoder().feed(wire)
        if [r.reject.value for r in results if isinstance(r, Rejected)] != [reject] or len(results) != 1:
            raise AssertionError(f"bad frame {name!r} decodes as {results}")
        bad_frames.append({"name": name, "wire_hex": wire.hex(), "reject": reject})

    reply = encode_frame(Frame(0, 1, BY_NAME["REPLY"].type_id, bytes((1, 0))))
    stream = b"\x13\x37" + good[1:-3] + good + b"\x00\x00" + reply[1:]  # noise, half a frame, frames
    streams = [
        {
            "name": "garbage and a broken frame, then two frames",
            "wire_hex": stream.hex(),
            "results": [_result_entry(r) for r in FrameDecoder().feed(stream)],
        }
    ]
    return {
        "about": "railbot MCU protocol test vectors; see firmware_bridge/PROTOCOL.md section 6",
        "crc16": [{"data_hex": d.hex(), "crc": crc16(d)} for d in _CRC_INPUTS],
        "cobs": [{"raw_hex": d.hex(), "encoded_hex": cobs_encode(d).hex()} for d in _COBS_INPUTS],
        "frames": frames,
        "bad_frames": bad_frames,
        "streams": streams,
        "bad_payloads": [
            {"message": "GATE_PULSE", "payload_hex": (10_001).to_bytes(2, "little").hex(), "field": "ms"},
            {"message": "GATE_PULSE", "payload_hex": "00", "field": None},
            {"message": "DRIVE", "payload_hex": "d0f7000064 00".replace(" ", ""), "field": "left_mm_s"},
            {"message": "CARD_READ", "payload_hex": "00" * 9 + "03a1b2c3", "field": "uid"},
            {"message": "CARD_READ", "payload_hex": "00" * 9 + "05a1b2c3d4", "field": "uid"},
        ],
    }


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=1) + "\n"


def load_vectors(path: Path = VECTORS_PATH) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge.vectors",
        description="Check (default) or rewrite firmware_bridge/vectors.json from the cases in vectors.py.",
    )
    parser.add_argument("--write", action="store_true", help="rewrite the file instead of checking it")
    args = parser.parse_args(argv)
    text = render(build_vectors())
    if args.write:
        VECTORS_PATH.write_text(text)
        print(f"wrote {VECTORS_PATH}")
        return 0
    if VECTORS_PATH.read_text() != text:
        print(f"{VECTORS_PATH} differs from the cases in vectors.py: run with --write if the change is meant")
        return 1
    print(f"{VECTORS_PATH} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
