"""The host's side of the link (PROTOCOL.md §3), sans-IO: handshake, commands, events, heartbeat, recovery.

`receive(data, now)` and `tick(now)` return what happened (`Happening`s); `data_to_send()` is what to write.
The host starts the handshake itself and starts it again whenever the link is lost (retransmissions without
progress, 500 ms of silence, an MCU that restarted or gave up on us). Commands waiting on a lost link fail:
whether such a command ran is unknown, and the caller decides (PROTOCOL.md §3.5).
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from firmware_bridge.arq import FAST_RESEND_GAP_S, LinkDown, Outgoing, Receiver, Sender, Take
from firmware_bridge.errors import NotLinkedError
from firmware_bridge.framing import Frame, FrameDecoder, encode_frame
from firmware_bridge.schema import (
    BY_ID,
    BY_NAME,
    PROTO_MAJOR,
    PROTO_MINOR,
    SCHEMA_HASH,
    Delivery,
    Direction,
    Fields,
    PayloadError,
    ReplyResult,
    decode_payload,
    encode_payload,
)

log = logging.getLogger(__name__)

_REPLY: Final = BY_NAME["REPLY"]
_NAK_ID: Final = BY_NAME["NAK"].type_id
_RESULTS: Final = {int(r): r for r in ReplyResult}
HEARTBEAT_S: Final = 0.100
SILENCE_S: Final = 0.500
HELLO_TRIES: Final = 10


class LinkState(enum.Enum):
    HANDSHAKING = "handshaking"
    LINKED = "linked"
    REFUSED = "refused"  # incompatible firmware: nothing more is tried


@dataclass(frozen=True)
class Linked:
    fw_version: int
    board_id: int
    boot_id: int
    caps: int
    proto_minor: int


@dataclass(frozen=True)
class Refused:
    """The MCU speaks another protocol or schema; the link stays down."""

    reason: str


@dataclass(frozen=True)
class NoAnswer:
    """A round of HELLOs went unanswered; the host keeps trying."""

    tries: int


@dataclass(frozen=True)
class Replied:
    seq: int
    result: ReplyResult


@dataclass(frozen=True)
class Event:
    name: str
    fields: Fields
    boot_id: int


@dataclass(frozen=True)
class Status:
    fields: Fields


@dataclass(frozen=True)
class LinkLost:
    """The link went down; `failed`: seqs of commands without a reply (they may or may not have run)."""

    reason: str
    failed: tuple[int, ...] = ()


Happening = Linked | Refused | NoAnswer | Replied | Event | Status | LinkLost


@dataclass
class _Handshake:
    nonce: int
    tries: int = 0
    sent_at: float | None = None


@dataclass
class HostCounters:
    frames_in: int = 0
    rejected: int = 0
    retransmitted: int = 0
    duplicates: int = 0
    reconnects: int = 0
    payload_errors: int = 0
    dropped_events: list[str] = field(default_factory=list)


class HostProtocol:
    """The host end of one link. Call `tick` at least every 10-20 ms; it starts handshaking at once."""

    def __init__(self, now: float, rto: float = 0.100) -> None:
        self._rto = rto
        self._decoder = FrameDecoder()
        self._commands = Sender(rto=rto)
        self._events = Receiver()
        self._out = bytearray()
        self._happened: list[Happening] = []
        self._sent_at = now
        self._heard_at = now
        self._nak_at = -1.0
        self._handshake = _Handshake(secrets.randbits(32))
        self.state = LinkState.HANDSHAKING
        self.boot_id: int | None = None
        self._last_event_seq = 0  # of this boot_id: events at or below it were delivered already
        self.counters = HostCounters()

    @property
    def linked(self) -> bool:
        return self.state is LinkState.LINKED

    def command(self, name: str, fields: Fields, now: float | None = None) -> int:
        """Queue a command, and with `now` put it in `data_to_send` at once if the window has room; returns
        its seq, which its `Replied` will carry. Raises `PayloadError` for a field out of bounds (nothing is
        sent) and `ValueError` for a name that is not a host command."""
        spec = BY_NAME.get(name)
        if (
            spec is None
            or spec.direction is not Direction.HOST_TO_MCU
            or spec.delivery is not Delivery.RELIABLE
        ):
            raise ValueError(f"{name!r} is not a command")
        if not self.linked:
            raise NotLinkedError(f"the link is {self.state.value}")
        seq = self._commands.queue(spec.type_id, encode_payload(spec, fields))
        if now is not None:
            self._send_due(now)
        return seq

    def receive(self, data: bytes, now: float) -> list[Happening]:
        for result in self._decoder.feed(data):
            if isinstance(result, Frame):
                self.counters.frames_in += 1
                self._heard_at = now
                self._frame(result, now)
            else:
                self.counters.rejected += 1
                if self.linked:
                    self._damaged(now)
        if self.linked:
            self._send_due(now)  # a reply may have made room in the window
        happened, self._happened = self._happened, []
        return happened

    def tick(self, now: float) -> list[Happening]:
        if self.state is LinkState.HANDSHAKING:
            self._hello(now)
        elif self.state is LinkState.LINKED:
            if now - self._heard_at >= SILENCE_S:
                self._lose(f"no frame from the MCU for {(now - self._heard_at) * 1000:.0f} ms", now)
            elif self._send_due(now) and now - self._sent_at >= HEARTBEAT_S:
                self._send(Frame(0, self._events.last, BY_NAME["HEARTBEAT"].type_id), now)
        self.counters.retransmitted = self._commands.retransmitted
        happened, self._happened = self._happened, []
        return happened

    def _damaged(self, now: float) -> None:
        """A frame from the MCU was thrown away: say so (the MCU sends its events again), and send again the
        commands still waiting (the lost frame may have been a reply; the MCU answers from its cache)."""
        if now - self._nak_at >= FAST_RESEND_GAP_S:
            self._nak_at = now
            self._send(Frame(0, self._events.last, _NAK_ID), now)
        self._resend(now)

    def _resend(self, now: float) -> None:
        self._send_commands(self._commands.resend_now, now)

    def _send_due(self, now: float) -> bool:
        """Put the commands due now on the wire; False if that found the link down (and lost it)."""
        return self._send_commands(self._commands.due, now)

    def _send_commands(self, take: Callable[[float], list[Outgoing]], now: float) -> bool:
        """Send what `take` (due or resend_now) gives; False if it found the link down (and lost it)."""
        try:
            messages = take(now)
        except LinkDown as err:
            self._lose(str(err), now)
            return False
        for message in messages:
            self._send(Frame(message.seq, self._events.last, message.type, message.payload), now)
        return True

    def data_to_send(self) -> bytes:
        data, self._out = bytes(self._out), bytearray()
        return data

    def restart(self, now: float, reason: str) -> None:
        """Handshake again (e.g. after the port was reopened)."""
        self._lose(reason, now)

    def _hello(self, now: float) -> None:
        hs = self._handshake
        if hs.sent_at is not None and now - hs.sent_at < self._rto:
            return
        if hs.tries >= HELLO_TRIES:
            self._happened.append(NoAnswer(hs.tries))
            self._handshake = hs = _Handshake(secrets.randbits(32))
        hs.tries += 1
        hs.sent_at = now
        hello = BY_NAME["HELLO"]
        payload = encode_payload(
            hello,
            {
                "proto_major": PROTO_MAJOR,
                "proto_minor": PROTO_MINOR,
                "schema_hash": SCHEMA_HASH,
                "nonce": hs.nonce,
            },
        )
        self._send(Frame(0, 0, hello.type_id, payload), now)

    def _frame(self, frame: Frame, now: float) -> None:
        if frame.type == _REPLY.type_id and len(frame.payload) == _REPLY.fixed.size and self.linked:
            # The frame of every round trip, first and without the general path's lookups.
            seq, result = _REPLY.fixed.unpack(frame.payload)
            if seq and result in _RESULTS:
                if self._commands.complete(seq, now) is not None:
                    self._happened.append(Replied(seq, _RESULTS[result]))
                return
        spec = BY_ID.get(frame.type)
        if spec is None or spec.direction is Direction.HOST_TO_MCU:
            what = "unknown" if spec is None else f"{spec.name}, a host message,"
            log.warning("frame of type %#04x (%s) from the MCU dropped", frame.type, what)
            return
        try:
            fields = decode_payload(spec, frame.payload)
        except PayloadError as err:
            self.counters.payload_errors += 1
            log.warning("frame dropped: %s", err)
            return
        if spec.name == "HELLO_ACK":
            self._hello_ack(fields, now)
            return
        if not self.linked:
            return
        if spec.name == "NAK":
            self._resend(now)
        elif spec.name == "STATUS":
            self._status(fields, now)
        elif spec.name == "REPLY":
            seq = int(fields["cmd_seq"])
            if self._commands.complete(seq, now) is not None:
                self._happened.append(Replied(seq, ReplyResult(int(fields["result"]))))
        elif spec.delivery is Delivery.RELIABLE:
            self._event(frame, spec.name, fields, now)

    def _hello_ack(self, fields: Fields, now: float) -> None:
        if self.state is not LinkState.HANDSHAKING or fields["nonce"] != self._handshake.nonce:
            return  # an answer to an older HELLO
        if fields["proto_major"] != PROTO_MAJOR or fields["schema_hash"] != SCHEMA_HASH:
            theirs = f"{int(fields['proto_major'])}.{int(fields['proto_minor'])}"
            their_hash = int(fields["schema_hash"])
            reason = (
                f"MCU speaks protocol {theirs} with schema {their_hash:#010x}; this host speaks "
                f"{PROTO_MAJOR}.{PROTO_MINOR} with schema {SCHEMA_HASH:#010x}: "
                "update the firmware or the host"
            )
            log.error("link refused: %s", reason)
            self.state = LinkState.REFUSED
            self._happened.append(Refused(reason))
            return
        boot_id = int(fields["boot_id"])
        if boot_id != self.boot_id:
            self._last_event_seq = 0
        self.boot_id = boot_id
        self.state = LinkState.LINKED
        self._commands.reset()
        self._events.reset()
        self._heard_at = now
        self._happened.append(
            Linked(
                fw_version=int(fields["fw_version"]),
                board_id=int(fields["board_id"]),
                boot_id=boot_id,
                caps=int(fields["caps"]),
                proto_minor=int(fields["proto_minor"]),
            )
        )
        log.info("linked board=%d boot=%08x", fields["board_id"], boot_id)

    def _status(self, fields: Fields, now: float) -> None:
        if fields["boot_id"] != self.boot_id:
            self._lose("the MCU restarted (new boot id)", now)
        elif not fields["linked"]:
            self._lose("the MCU dropped the link", now)
        self._happened.append(Status(fields))

    def _event(self, frame: Frame, name: str, fields: Fields, now: float) -> None:
        taken = self._events.take(frame.seq)
        if taken is Take.OUT_OF_ORDER:
            return
        self._send(Frame(0, self._events.last, BY_NAME["ACK"].type_id), now)
        if taken is Take.DUPLICATE:
            self.counters.duplicates += 1
            return
        event_seq = int(fields["event_seq"])
        if event_seq <= self._last_event_seq:
            # Sent again after a new handshake, though delivered before: the MCU never saw our ack.
            self.counters.duplicates += 1
            return
        self._last_event_seq = event_seq
        assert self.boot_id is not None
        self._happened.append(Event(name, fields, self.boot_id))

    def _lose(self, reason: str, now: float) -> None:
        failed = tuple(m.seq for m in self._commands.reset())
        was_linked = self.linked
        self.state = LinkState.HANDSHAKING
        self._handshake = _Handshake(secrets.randbits(32))
        self._events.reset()
        self.counters.reconnects += 1
        if was_linked or failed:
            log.warning("link lost: %s (%d commands without a reply)", reason, len(failed))
            self._happened.append(LinkLost(reason, failed))
        self._hello(now)

    def _send(self, frame: Frame, now: float) -> None:
        self._out += encode_frame(frame)
        self._sent_at = now
