"""Frames on the serial line: `0x00 | COBS(body) | 0x00`, body = `seq | ack | type | payload | CRC-16`.

Pure code, no I/O (PROTOCOL.md §2 is the byte-by-byte description). `encode_frame` writes one frame;
`FrameDecoder` takes bytes as they arrive, in any chunks, and hands back whole frames and, for whatever it
had to throw away, a `Rejected` with the reason, so the link can count noise. A frame is only ever taken
between two delimiters, so after any damage the decoder is back in step at the next `0x00`: within one frame.
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass
from typing import Final, NamedTuple

DELIMITER: Final = 0x00
HEADER_BYTES: Final = 3  # seq, ack, type
CRC_BYTES: Final = 2
MAX_BODY_BYTES: Final = 64
MAX_PAYLOAD_BYTES: Final = MAX_BODY_BYTES - HEADER_BYTES - CRC_BYTES  # 59
# COBS adds one code byte per started run of 254 non-zero bytes: 64 bytes of body encode to at most 65.
MAX_ENCODED_BYTES: Final = MAX_BODY_BYTES + 1
CRC_INIT: Final = 0xFFFF
_CODES: Final = tuple(bytes((n,)) for n in range(256))


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor); "123456789" → 0x29B1."""
    return binascii.crc_hqx(data, CRC_INIT)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: `data` without any zero byte, one byte longer per started 254.

    Each zero (and the end) closes a block: a code byte `n` (1..255) says `n - 1` data bytes follow and, if
    `n < 255` and more blocks follow, a zero stood after them. A block of 254 data bytes closes by itself;
    at the very end of the data it adds no empty block.
    """
    if len(data) < 254:
        # No block can reach 254 bytes: each block between zeros is its length + 1 and its bytes.
        return b"".join([_CODES[len(block) + 1] + block for block in data.split(b"\x00")])
    out = bytearray(b"\x00")
    code_at = 0
    for index, byte in enumerate(data):
        if byte:
            out.append(byte)
        if not byte or len(out) - code_at == 0xFF:
            out[code_at] = len(out) - code_at
            code_at = len(out)
            if not byte or index + 1 < len(data):
                out.append(0)
    if code_at < len(out):
        out[code_at] = len(out) - code_at
    return bytes(out)


class CobsError(ValueError):
    """Bytes that no COBS encoder writes."""


def cobs_decode(encoded: bytes) -> bytes:
    """The inverse of `cobs_encode`; raises `CobsError` for a zero byte or a code that runs past the end."""
    if 0 in encoded:
        raise CobsError(f"zero byte at {encoded.index(0)}")
    out = bytearray()
    at, size = 0, len(encoded)
    while at < size:
        code = encoded[at]
        end = at + code
        if end > size:
            raise CobsError(f"code {code} at {at} runs {end - size} bytes past the end")
        out += encoded[at + 1 : end]
        at = end
        if code != 0xFF and at < size:
            out.append(0)
    return bytes(out)


class Frame(NamedTuple):
    """One frame's body: the sender's sequence number (0: not sequenced), the last sequence number it took
    from the other side in order (0: none yet), the message type and its payload.

    A tuple, checked where it is encoded: a decoded frame's fields are bytes by construction, and building
    one is on the path of every round trip.
    """

    seq: int
    ack: int
    type: int
    payload: bytes = b""

    def body(self) -> bytes:
        """`seq | ack | type | payload | CRC-16 (little-endian)`; raises `ValueError` naming a bad field."""
        if not (0 <= self.seq <= 0xFF and 0 <= self.ack <= 0xFF and 0 <= self.type <= 0xFF):
            for name, value in (("seq", self.seq), ("ack", self.ack), ("type", self.type)):
                if not 0 <= value <= 0xFF:
                    raise ValueError(f"frame {name} {value} is not a byte (0..255)")
        if len(self.payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"payload of {len(self.payload)} bytes; a frame carries at most {MAX_PAYLOAD_BYTES}"
            )
        head = bytes((self.seq, self.ack, self.type)) + self.payload
        return head + crc16(head).to_bytes(CRC_BYTES, "little")


def encode_frame(frame: Frame) -> bytes:
    """`0x00 | COBS(body) | 0x00`: the leading delimiter ends any half frame the receiver still holds."""
    return b"\x00" + cobs_encode(frame.body()) + b"\x00"


def parse_body(body: bytes) -> Frame:
    """A frame from its decoded body; raises `FrameError` naming what is wrong."""
    if len(body) < HEADER_BYTES + CRC_BYTES:
        raise FrameError(
            Reject.TOO_SHORT, f"body of {len(body)} bytes; the least is {HEADER_BYTES + CRC_BYTES}"
        )
    if len(body) > MAX_BODY_BYTES:
        raise FrameError(Reject.TOO_LONG, f"body of {len(body)} bytes; the most is {MAX_BODY_BYTES}")
    head, sent = body[:-CRC_BYTES], int.from_bytes(body[-CRC_BYTES:], "little")
    computed = crc16(head)
    if sent != computed:
        raise FrameError(Reject.BAD_CRC, f"CRC {sent:#06x}, computed {computed:#06x}")
    return Frame(head[0], head[1], head[2], head[HEADER_BYTES:])


class Reject(enum.StrEnum):
    """Why bytes between two delimiters were not a frame."""

    BAD_COBS = "bad_cobs"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    BAD_CRC = "bad_crc"


class FrameError(ValueError):
    """A frame that cannot be taken, with the reason as a `Reject`."""

    def __init__(self, reject: Reject, detail: str) -> None:
        super().__init__(f"{reject.value}: {detail}")
        self.reject = reject
        self.detail = detail


@dataclass(frozen=True)
class Rejected:
    """Bytes the decoder threw away: why, and how many (the delimiters not counted)."""

    reject: Reject
    length: int
    detail: str


class FrameDecoder:
    """A streaming decoder: `feed` bytes as they come, get back the frames (and rejects) they completed.

    Bytes are collected up to the next delimiter. Past `MAX_ENCODED_BYTES` the rest until the next delimiter
    is skipped and reported once as too long, so garbage never grows the buffer.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._overflow = 0  # bytes skipped since the buffer filled up, 0 while collecting normally

    def feed(self, data: bytes) -> list[Frame | Rejected]:
        parts = data.split(b"\x00")
        if len(parts) == 1:
            self._collect(data)
            return []
        # parts[0] ends what the buffer holds; the middle ones are whole; the last one starts a frame.
        if parts[0]:
            self._collect(parts[0])
        results: list[Frame | Rejected] = []
        finished = self._finish()
        if finished is not None:
            results.append(finished)
        for part in parts[1:-1]:
            decoded = _decode(part, len(part))
            if decoded is not None:
                results.append(decoded)
        if parts[-1]:
            self._collect(parts[-1])
        return results

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet ended by a delimiter."""
        return len(self._buffer) + self._overflow

    def _collect(self, chunk: bytes) -> None:
        room = MAX_ENCODED_BYTES - len(self._buffer)
        if self._overflow or len(chunk) > room:
            taken = max(room, 0) if not self._overflow else 0
            self._buffer += chunk[:taken]
            self._overflow += len(chunk) - taken
        else:
            self._buffer += chunk

    def _finish(self) -> Frame | Rejected | None:
        encoded, overflow = bytes(self._buffer), self._overflow
        self._buffer.clear()
        self._overflow = 0
        return _decode(encoded, len(encoded) + overflow)


def _decode(encoded: bytes, length: int) -> Frame | Rejected | None:
    """What `length` bytes between two delimiters were; `encoded` is what was kept (all, unless too long)."""
    if length > MAX_ENCODED_BYTES:
        return Rejected(Reject.TOO_LONG, length, f"{length} bytes between delimiters")
    if not encoded:
        return None  # two delimiters in a row: the leading one of a frame, or line noise
    try:
        body = cobs_decode(encoded)
    except CobsError as err:
        return Rejected(Reject.BAD_COBS, len(encoded), str(err))
    try:
        return parse_body(body)
    except FrameError as err:
        return Rejected(err.reject, len(encoded), err.detail)
