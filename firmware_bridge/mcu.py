"""The MCU's side of the link (PROTOCOL.md §3), sans-IO: what the firmware does, in Python, for the simulator.

Bytes come in through `receive`, time through `tick` (call it every 10 ms or so: events, STATUS and the
heartbeat timeout are handled there, not on every frame); what to write goes out through `data_to_send`. The
devices are behind `Board`: the protocol decides whether a command may run (linked, in order, once, within
bounds) and the board runs it; the board reports what happened as events, which the protocol numbers and
delivers reliably.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from firmware_bridge.arq import FAST_RESEND_GAP_S, LinkDown, Outgoing, Receiver, Sender, Take
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

HEARTBEAT_TIMEOUT_S: Final = 0.500
STATUS_PERIOD_S: Final = 0.100
EVENT_QUEUE: Final = 64
FAULT_EVENT_QUEUE_FULL: Final = 0x0001
_REPLY: Final = BY_NAME["REPLY"]
_HELLO_ID: Final = BY_NAME["HELLO"].type_id
_NAK_ID: Final = BY_NAME["NAK"].type_id


@dataclass(frozen=True)
class Snapshot:
    """The devices' state, for STATUS."""

    gate: int
    estop: bool
    outputs: int
    faults: int


class Board(Protocol):
    """The MCU's devices, as the protocol drives them."""

    def execute(self, command: str, fields: Fields, now: float) -> ReplyResult:
        """Run a command that passed the protocol's checks (the e-stop is the board's to check)."""
        ...

    def safe_state(self, now: float) -> None:
        """Motors off, gate closed, compartments locked, buzzer and lights off, fault light on."""
        ...

    def poll(self, now: float) -> list[tuple[str, Fields]]:
        """Events since the last poll (name and fields, without event_seq and uptime_ms)."""
        ...

    def snapshot(self, now: float) -> Snapshot: ...


@dataclass(frozen=True)
class Identity:
    board_id: int
    boot_id: int
    fw_version: int
    caps: int


class McuProtocol:
    """The MCU end of one link; starts unlinked, in the safe state."""

    def __init__(
        self,
        board: Board,
        identity: Identity,
        now: float,
        *,
        proto_major: int = PROTO_MAJOR,
        schema_hash: int = SCHEMA_HASH,
    ) -> None:
        """`proto_major` and `schema_hash` are what this MCU speaks: other values than the host's only
        to test the host's refusal of incompatible firmware."""
        self._proto_major = proto_major
        self._schema_hash = schema_hash
        self._board = board
        self._identity = identity
        self._started = now
        self._decoder = FrameDecoder()
        self._events = Sender()
        self._commands = Receiver()
        self._replies: OrderedDict[int, int] = OrderedDict()
        self._out = bytearray()
        self._event_seq = 0
        self._faults = 0
        self._heard_at = now
        self._nak_at = -1.0
        self._status_at = now
        self.linked = False
        self.rejected_frames = 0
        board.safe_state(now)

    def uptime_ms(self, now: float) -> int:
        return int((now - self._started) * 1000) & 0xFFFF_FFFF

    def receive(self, data: bytes, now: float) -> None:
        # Silence first: frames arriving after 500 ms without any must not revive a link that timed out.
        self._check_heartbeat(now)
        for result in self._decoder.feed(data):
            if isinstance(result, Frame):
                self._heard_at = now
                self._frame(result, now)
            else:
                self.rejected_frames += 1
                if self.linked:
                    self._damaged(now)

    def tick(self, now: float) -> None:
        self._check_heartbeat(now)
        for name, fields in self._board.poll(now):
            self._event(name, fields, now)
        if self.linked and self._events.pending:
            self._send_events(self._events.due, now)
        if self._events.pending < EVENT_QUEUE // 2:
            self._faults &= ~FAULT_EVENT_QUEUE_FULL
        if now - self._status_at >= STATUS_PERIOD_S:
            self._status_at = now
            self._send_status(now)

    def _damaged(self, now: float) -> None:
        """A frame from the host was thrown away: say so at once, so the host sends its commands again
        without waiting for its timeout, and send our events again (it may have been the host's ack)."""
        if now - self._nak_at >= FAST_RESEND_GAP_S:
            self._nak_at = now
            self._send(Frame(0, self._commands.last, _NAK_ID))
        self._resend_events(now)

    def _resend_events(self, now: float) -> None:
        self._send_events(self._events.resend_now, now)

    def _send_events(self, take: Callable[[float], list[Outgoing]], now: float) -> None:
        """Send what `take` (due or resend_now) gives of the events in flight."""
        try:
            messages = take(now)
        except LinkDown as err:
            # The host hears nothing of ours, or will not acknowledge: give up on it, safely.
            log.warning("events not acknowledged (%s): safe state", err)
            self._unlink(now)
            return
        for message in messages:
            self._send(Frame(message.seq, self._commands.last, message.type, message.payload))

    def _check_heartbeat(self, now: float) -> None:
        if self.linked and now - self._heard_at >= HEARTBEAT_TIMEOUT_S:
            log.warning("no frame from the host for %.0f ms: safe state", (now - self._heard_at) * 1000)
            self._unlink(now)

    def data_to_send(self) -> bytes:
        data, self._out = bytes(self._out), bytearray()
        return data

    def _frame(self, frame: Frame, now: float) -> None:
        if frame.type == _HELLO_ID:
            self._hello(frame, now)
            return
        if self.linked:
            self._events.acknowledge(frame.ack, now)
            if frame.type == _NAK_ID:
                self._resend_events(now)
        if frame.seq == 0:
            return  # HEARTBEAT, ACK, NAK: their ack field was all they carried
        if not self.linked:
            self._reply(frame.seq, ReplyResult.NOT_LINKED)
            return
        taken = self._commands.take(frame.seq)
        if taken is Take.OUT_OF_ORDER:
            return
        if taken is Take.DUPLICATE:
            cached = self._replies.get(frame.seq)
            if cached is not None:
                self._reply(frame.seq, ReplyResult(cached))
            return
        result = self._execute(frame, now)
        self._replies[frame.seq] = result
        while len(self._replies) > 4:
            self._replies.popitem(last=False)
        self._reply(frame.seq, result)

    def _execute(self, frame: Frame, now: float) -> ReplyResult:
        spec = BY_ID.get(frame.type)
        if (
            spec is None
            or spec.direction is not Direction.HOST_TO_MCU
            or spec.delivery is not Delivery.RELIABLE
        ):
            return ReplyResult.UNKNOWN_TYPE
        try:
            fields = decode_payload(spec, frame.payload)
        except PayloadError as err:
            log.warning("command refused seq=%d: %s", frame.seq, err)
            return ReplyResult.BAD_ARGUMENTS
        return self._board.execute(spec.name, fields, now)

    def _hello(self, frame: Frame, now: float) -> None:
        hello = BY_NAME["HELLO"]
        try:
            fields = decode_payload(hello, frame.payload)
        except PayloadError as err:
            log.warning("bad HELLO: %s", err)
            return
        compatible = fields["proto_major"] == self._proto_major and fields["schema_hash"] == self._schema_hash
        if self.linked:
            self._unlink(now)
        if compatible:
            self.linked = True
            self._heard_at = now
            # Events not yet acknowledged are sent again under the new numbering: none is lost.
            for message in self._events.reset():
                self._events.queue(message.type, message.payload)
            self._commands.reset()
            self._replies.clear()
        ack = BY_NAME["HELLO_ACK"]
        payload = encode_payload(
            ack,
            {
                "proto_major": self._proto_major,
                "proto_minor": PROTO_MINOR,
                "schema_hash": self._schema_hash,
                "nonce": fields["nonce"],
                "fw_version": self._identity.fw_version,
                "board_id": self._identity.board_id,
                "boot_id": self._identity.boot_id,
                "caps": self._identity.caps,
            },
        )
        self._send(Frame(0, 0, ack.type_id, payload))

    def _unlink(self, now: float) -> None:
        self.linked = False
        self._board.safe_state(now)

    def _event(self, name: str, fields: Fields, now: float) -> None:
        if self._events.pending >= EVENT_QUEUE:
            self._faults |= FAULT_EVENT_QUEUE_FULL
            log.warning("event queue full: %s dropped", name)
            return
        self._event_seq += 1
        spec = BY_NAME[name]
        payload = encode_payload(
            spec, {"event_seq": self._event_seq, "uptime_ms": self.uptime_ms(now), **fields}
        )
        self._events.queue(spec.type_id, payload)

    def _reply(self, seq: int, result: ReplyResult) -> None:
        # Packed directly: a seq taken from a frame and a ReplyResult are within bounds by construction.
        payload = _REPLY.fixed.pack(seq, result)
        self._send(Frame(0, self._commands.last if self.linked else 0, _REPLY.type_id, payload))

    def _send_status(self, now: float) -> None:
        snapshot = self._board.snapshot(now)
        status = BY_NAME["STATUS"]
        payload = encode_payload(
            status,
            {
                "boot_id": self._identity.boot_id,
                "uptime_ms": self.uptime_ms(now),
                "last_event_seq": self._event_seq,
                "gate": snapshot.gate,
                "estop": int(snapshot.estop),
                "outputs": snapshot.outputs,
                "faults": snapshot.faults | self._faults,
                "linked": int(self.linked),
            },
        )
        self._send(Frame(0, self._commands.last if self.linked else 0, status.type_id, payload))

    def _send(self, frame: Frame) -> None:
        self._out += encode_frame(frame)
