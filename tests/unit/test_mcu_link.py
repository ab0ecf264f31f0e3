"""HostProtocol against McuProtocol, sans-IO, on simulated time: a byte pipe that can flip, drop and go quiet.

The same engines run over real ptys in tests/integration; here every fault is exact and repeatable.
"""

from __future__ import annotations

import random
from typing import TypeVar

import pytest

from firmware_bridge.errors import NotLinkedError
from firmware_bridge.framing import Frame, FrameDecoder, encode_frame
from firmware_bridge.host import (
    Event,
    Happening,
    HostProtocol,
    Linked,
    LinkLost,
    LinkState,
    Refused,
    Replied,
)
from firmware_bridge.mcu import Identity, McuProtocol
from firmware_bridge.schema import BY_NAME, SCHEMA_HASH, Fields, ReplyResult, decode_payload, encode_payload
from tests.support.boards import RecordingBoard

STEP = 0.005
H = TypeVar("H", bound=Happening)  # 5 ms of simulated time a step


class Line:
    """Host and MCU joined by two byte pipes; noise is per byte, per direction, from one seeded stream."""

    def __init__(self, flip: float = 0.0, drop: float = 0.0, seed: int = 1) -> None:
        self.now = 0.0
        self.board = RecordingBoard()
        self.mcu = McuProtocol(
            self.board, Identity(board_id=3, boot_id=0xB007, fw_version=0x010000, caps=0x7F), 0.0
        )
        self.host = HostProtocol(0.0)
        self.rng = random.Random(seed)
        self.flip, self.drop = flip, drop
        self.mcu_deaf = False  # the MCU hears nothing (a cut line, a hung host)
        self.happened: list[Happening] = []

    def _noise(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if self.rng.random() < self.drop:
                continue
            out.append(byte ^ (1 << self.rng.randrange(8)) if self.rng.random() < self.flip else byte)
        return bytes(out)

    def step(self) -> None:
        self.now += STEP
        to_mcu = self._noise(self.host.data_to_send())
        if not self.mcu_deaf:
            self.mcu.receive(to_mcu, self.now)
        self.mcu.tick(self.now)
        self.happened += self.host.receive(self._noise(self.mcu.data_to_send()), self.now)
        self.happened += self.host.tick(self.now)

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / STEP)):
            self.step()

    def until(self, condition: str, limit_s: float = 10.0) -> None:
        for _ in range(round(limit_s / STEP)):
            if self.check(condition):
                return
            self.step()
        raise AssertionError(f"not {condition} after {limit_s} s of simulated time")

    def check(self, condition: str) -> bool:
        if condition == "linked":
            return self.host.linked
        raise ValueError(condition)

    def of(self, kind: type[H]) -> list[H]:
        return [h for h in self.happened if isinstance(h, kind)]


def test_the_handshake_links_and_names_the_board() -> None:
    line = Line()
    line.until("linked")
    [linked] = line.of(Linked)
    assert linked == Linked(fw_version=0x010000, board_id=3, boot_id=0xB007, caps=0x7F, proto_minor=0)
    assert line.mcu.linked


def test_commands_before_the_link_are_refused_on_the_host() -> None:
    line = Line()
    with pytest.raises(NotLinkedError, match="handshaking"):
        line.host.command("GATE_PULSE", {"ms": 100})


def run_commands(line: Line, count: int) -> list[ReplyResult]:
    """Issue `count` GATE_PULSEs (ms = 1..count), at most 4 waiting; returns the results in reply order."""
    line.until("linked")
    results: list[ReplyResult] = []
    waiting: set[int] = set()
    sent = 0
    for _ in range(round(600 / STEP)):
        while sent < count and len(waiting) < 4:
            sent += 1
            waiting.add(line.host.command("GATE_PULSE", {"ms": sent}))
        line.step()
        for happening in line.happened:
            assert not isinstance(happening, LinkLost), happening
            if isinstance(happening, Replied):
                assert happening.seq in waiting, f"seq {happening.seq} replied twice or never sent"
                waiting.remove(happening.seq)
                results.append(happening.result)
        line.happened.clear()
        if len(results) == count:
            return results
    raise AssertionError(f"only {len(results)} of {count} commands answered")


def test_a_thousand_commands_through_noise_run_once_each_and_unchanged() -> None:
    line = Line(flip=0.01, drop=0.005, seed=11)
    assert run_commands(line, 1_000) == [ReplyResult.OK] * 1_000
    executed = [fields["ms"] for name, fields in line.board.executed]
    # Every command ran exactly once, in order, with the very values sent: none lost, doubled or damaged.
    assert executed == list(range(1, 1_001))
    assert line.host.counters.rejected > 0
    assert line.host.counters.retransmitted > 0


def test_events_through_noise_arrive_once_in_order() -> None:
    line = Line(flip=0.01, drop=0.005, seed=5)
    line.until("linked")
    uids = [bytes((1, 2, 3, n % 256, n // 256)) for n in range(300)]
    for n, uid in enumerate(uids):
        line.board.pending_events.append(("CARD_READ", {"reader": n % 2, "uid": uid}))
        line.run(10 * STEP)  # 20 taps a second, beyond any queue of passengers
    line.run(5.0)
    events = line.of(Event)
    assert [e.fields["uid"] for e in events] == uids
    assert [e.fields["event_seq"] for e in events] == list(range(1, 301))
    assert line.host.counters.rejected > 0


def test_silence_puts_the_mcu_in_its_safe_state_and_the_link_recovers() -> None:
    line = Line()
    line.until("linked")
    safe_before = line.board.safe_states
    line.mcu_deaf = True
    line.run(0.6)
    assert not line.mcu.linked
    assert line.board.safe_states == safe_before + 1
    line.mcu_deaf = False
    line.run(1.0)
    assert line.host.linked
    assert line.mcu.linked
    assert any("dropped the link" in h.reason or "no frame" in h.reason for h in line.of(LinkLost))


def test_an_mcu_restart_is_detected_and_the_link_comes_back_with_no_event_lost() -> None:
    line = Line()
    line.until("linked")
    line.board.pending_events.append(("ESTOP", {"pressed": 1}))
    line.run(0.2)
    # A restart: a new protocol instance with a new boot id, on the same line.
    line.board = RecordingBoard()
    line.mcu = McuProtocol(line.board, Identity(3, 0xB008, 0x010000, 0x7F), line.now)
    line.board.pending_events.append(("ESTOP", {"pressed": 0}))
    line.run(1.0)
    assert line.host.linked
    assert line.host.boot_id == 0xB008
    assert any("restarted" in h.reason or "dropped" in h.reason for h in line.of(LinkLost))
    events = [(e.boot_id, e.name, e.fields["pressed"]) for e in line.of(Event)]
    assert events == [(0xB007, "ESTOP", 1), (0xB008, "ESTOP", 0)]


def test_commands_on_a_lost_link_fail_and_name_their_seqs() -> None:
    line = Line()
    line.until("linked")
    line.mcu_deaf = True
    seq = line.host.command("GATE_PULSE", {"ms": 5})
    line.run(1.0)
    lost = line.of(LinkLost)
    assert lost
    assert seq in lost[0].failed
    assert line.board.executed == []


def test_the_estop_refuses_actuators_but_not_stop() -> None:
    line = Line()
    line.until("linked")
    line.board.estop = True
    gate = line.host.command("GATE_PULSE", {"ms": 5})
    stop = line.host.command("STOP", {})
    line.run(0.2)
    assert {(r.seq, r.result) for r in line.of(Replied)} == {
        (gate, ReplyResult.REFUSED_ESTOP),
        (stop, ReplyResult.OK),
    }


def hello_nonce(data: bytes) -> int:
    [frame] = [f for f in FrameDecoder().feed(data) if isinstance(f, Frame)][-1:]
    return int(decode_payload(BY_NAME["HELLO"], frame.payload)["nonce"])


def test_incompatible_firmware_is_refused_naming_both_schemas() -> None:
    host = HostProtocol(0.0)
    host.tick(0.0)
    nonce = hello_nonce(host.data_to_send())
    ack = BY_NAME["HELLO_ACK"]
    fields: Fields = {
        "proto_major": 1,
        "proto_minor": 4,
        "schema_hash": 0x0BADF00D,
        "nonce": nonce,
        "fw_version": 0x010400,
        "board_id": 3,
        "boot_id": 9,
        "caps": 0,
    }
    happened = host.receive(encode_frame(Frame(0, 0, ack.type_id, encode_payload(ack, fields))), 0.01)
    [refused] = [h for h in happened if isinstance(h, Refused)]
    assert "schema 0x0badf00d" in refused.reason
    assert f"{SCHEMA_HASH:#010x}" in refused.reason
    assert host.state is LinkState.REFUSED
    # And it stays refused: no more HELLOs.
    host.tick(1.0)
    assert host.data_to_send() == b""


def test_a_command_out_of_bounds_is_never_sent() -> None:
    line = Line()
    line.until("linked")
    with pytest.raises(ValueError, match=r"GATE_PULSE.ms: value 20000 is outside 1..10000"):
        line.host.command("GATE_PULSE", {"ms": 20_000})
    with pytest.raises(ValueError, match="not a command"):
        line.host.command("CARD_READ", {})


def test_a_frame_after_the_heartbeat_timeout_does_not_revive_the_link() -> None:
    line = Line()
    line.until("linked")
    late = encode_frame(Frame(0, 0, BY_NAME["HEARTBEAT"].type_id))
    line.mcu.receive(late, line.now + 0.6)  # the first frame in 600 ms, with no tick in between
    assert not line.mcu.linked


def test_a_damaged_command_is_sent_again_at_once_on_the_mcus_nak() -> None:
    """No waiting for the retransmission timeout: the MCU throws the damaged frame away and says NAK, and
    the host sends the command again straight away (well within one RTO)."""
    line = Line()
    line.until("linked")
    line.happened.clear()
    seq = line.host.command("BUZZER", {"freq_hz": 440, "ms": 5}, line.now)
    wire = bytearray(line.host.data_to_send())
    wire[3] ^= 0x04  # inside the body: a CRC error, not a lost delimiter
    line.mcu.receive(bytes(wire), line.now)
    nak = line.mcu.data_to_send()
    assert [f.type for f in FrameDecoder().feed(nak) if isinstance(f, Frame)] == [BY_NAME["NAK"].type_id]
    line.happened += line.host.receive(nak, line.now + 0.0005)
    line.mcu.receive(line.host.data_to_send(), line.now + 0.0006)
    line.happened += line.host.receive(line.mcu.data_to_send(), line.now + 0.0007)
    assert line.of(Replied) == [Replied(seq, ReplyResult.OK)]
    assert [name for name, _ in line.board.executed] == ["BUZZER"]
