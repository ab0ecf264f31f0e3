"""The MCU simulator as a process behind a real pty, spoken to by hand with the Python codec: the handshake,
commands and their replies, events, the e-stop, silence, a reset, incompatible firmware, and its control
socket and command line."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import serial

from firmware_bridge.arq import Receiver, Take, next_seq
from firmware_bridge.framing import Frame, FrameDecoder, encode_frame
from firmware_bridge.schema import (
    BY_ID,
    BY_NAME,
    PROTO_MAJOR,
    PROTO_MINOR,
    SCHEMA_HASH,
    Cap,
    Fields,
    GateState,
    Output,
    ReplyResult,
    decode_payload,
    encode_payload,
)
from firmware_bridge.simulator import build_parser
from tests.support.simulator import TIMEOUT, Simulator

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 0.1


@dataclass(frozen=True)
class Message:
    name: str
    fields: Fields
    frame: Frame
    at: float  # time.monotonic() when it was read


class Host:
    """The host's end, by hand: frames built and read with the codec, events acked at once unless
    `ack_events` is off, and a HEARTBEAT every 100 ms while linked unless `heartbeat` is off.

    `expect` reads until a message matches, like pexpect: what came before the match is consumed, so
    successive expectations also check the order in which things arrived."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.port = serial.Serial(simulator.pty_path, 115200, timeout=0.02)
        self.port.reset_input_buffer()
        self.decoder = FrameDecoder()
        self.events = Receiver()
        self.inbox: list[Message] = []
        self.seen: list[str] = []
        self.command_seq = 0
        self.linked = False
        self.heartbeat = True
        self.ack_events = True
        self.sent_at = time.monotonic()

    def close(self) -> None:
        self.port.close()

    def send(self, name: str, fields: Fields | None = None, seq: int = 0) -> None:
        spec = BY_NAME[name]
        payload = encode_payload(spec, fields or {})
        self.port.write(encode_frame(Frame(seq, self.events.last, spec.type_id, payload)))
        self.sent_at = time.monotonic()

    def command(self, name: str, fields: Fields | None = None, seq: int | None = None) -> int:
        """Send a command under the next seq (or `seq`, to send one again); returns the seq."""
        if seq is None:
            self.command_seq = next_seq(self.command_seq)
            seq = self.command_seq
        self.send(name, fields, seq)
        return seq

    def hello(self, nonce: int = 0x5EED) -> Message:
        self.send(
            "HELLO",
            {
                "proto_major": PROTO_MAJOR,
                "proto_minor": PROTO_MINOR,
                "schema_hash": SCHEMA_HASH,
                "nonce": nonce,
            },
        )
        ack = self.expect("HELLO_ACK", nonce=nonce)
        self.command_seq = 0
        self.linked = ack.fields["schema_hash"] == SCHEMA_HASH and ack.fields["proto_major"] == PROTO_MAJOR
        return ack

    def reply(self, seq: int) -> ReplyResult:
        return ReplyResult(int(self.expect("REPLY", cmd_seq=seq).fields["result"]))

    def expect(self, name: str, timeout: float = TIMEOUT, **fields: int | bytes) -> Message:
        """The next message called `name` whose fields include `fields`."""

        def matches(message: Message) -> bool:
            return message.name == name and all(message.fields.get(k) == v for k, v in fields.items())

        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self.inbox):
                if matches(message):
                    del self.inbox[: index + 1]
                    return message
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no {name} with {fields} within {timeout} s; last messages seen: {self.seen[-12:]}; "
                    f"simulator log:\n{self.simulator.log()}"
                )
            self._pump()

    def _pump(self) -> None:
        if self.linked and self.heartbeat and time.monotonic() - self.sent_at >= HEARTBEAT_S:
            self.send("HEARTBEAT")
        for frame in self.decoder.feed(self.port.read(max(1, self.port.in_waiting))):
            assert isinstance(frame, Frame), f"the simulator sent a damaged frame: {frame}"
            spec = BY_ID[frame.type]
            message = Message(spec.name, decode_payload(spec, frame.payload), frame, time.monotonic())
            self.seen.append(f"{spec.name}{dict(message.fields)}")
            if spec.name == "HELLO_ACK":
                self.events.reset()  # the MCU numbers its events from 1 again; the next frame may be one
            if frame.seq != 0:
                if not self.ack_events:
                    continue
                taken = self.events.take(frame.seq)
                self.send("ACK")
                if taken is not Take.NEW:
                    continue
            self.inbox.append(message)


@pytest.fixture
def connect() -> Iterator[Callable[[Simulator], Host]]:
    hosts: list[Host] = []

    def open_host(simulator: Simulator) -> Host:
        hosts.append(Host(simulator))
        return hosts[-1]

    yield open_host
    for host in hosts:
        host.close()


Start = Callable[..., Simulator]
Connect = Callable[[Simulator], Host]


def test_hello_links_and_names_the_board(start_simulator: Start, connect: Connect) -> None:
    simulator = start_simulator("--board-id", "42")
    host = connect(simulator)
    ack = host.hello(nonce=0xC0FFEE)
    assert ack.fields["schema_hash"] == SCHEMA_HASH
    assert (ack.fields["proto_major"], ack.fields["proto_minor"]) == (PROTO_MAJOR, PROTO_MINOR)
    assert (ack.fields["board_id"], ack.fields["fw_version"]) == (42, 0x010000)
    assert ack.fields["caps"] == sum(Cap)
    status = host.expect("STATUS", linked=1)
    assert status.fields["boot_id"] == ack.fields["boot_id"] == simulator.state()["boot_id"]


def test_a_command_before_hello_is_not_linked_and_not_run(start_simulator: Start, connect: Connect) -> None:
    simulator = start_simulator()
    host = connect(simulator)
    seq = host.command("GATE_PULSE", {"ms": 100})
    assert host.reply(seq) is ReplyResult.NOT_LINKED
    assert simulator.state()["executed_count"] == 0


def test_a_gate_pulse_replies_ok_and_reports_each_gate_state(
    start_simulator: Start, connect: Connect
) -> None:
    simulator = start_simulator()
    host = connect(simulator)
    host.hello()
    seq = host.command("GATE_PULSE", {"ms": 100})
    assert host.reply(seq) is ReplyResult.OK
    events = [host.expect("GATE_STATE", state=state) for state in (1, 2, 3, 0)]
    sequence = [int(event.fields["event_seq"]) for event in events]
    assert sequence == sorted(sequence)
    assert simulator.state()["executed"] == [["GATE_PULSE", {"ms": 100}]]


def test_a_repeated_command_is_answered_from_the_cache_and_runs_once(
    start_simulator: Start, connect: Connect
) -> None:
    simulator = start_simulator()
    host = connect(simulator)
    host.hello()
    seq = host.command("GATE_PULSE", {"ms": 100})
    assert host.reply(seq) is ReplyResult.OK
    # Run again now, the pulse would be refused: an OK can only come from the cache.
    simulator.control(op="estop", pressed=True)
    host.command("GATE_PULSE", {"ms": 100}, seq=seq)
    assert host.reply(seq) is ReplyResult.OK
    state = simulator.state()
    assert (state["executed_count"], state["command_counts"]) == (1, {"GATE_PULSE": 1})


def test_a_card_tap_arrives_with_its_reader_and_uid_and_is_not_logged(
    start_simulator: Start, connect: Connect
) -> None:
    simulator = start_simulator("--log-level", "DEBUG")
    host = connect(simulator)
    host.hello()
    simulator.control(op="card", reader=1, uid="04a1b2c3")
    host.expect("CARD_READ", reader=1, uid=bytes.fromhex("04a1b2c3"))
    assert "a1b2" not in simulator.log().lower()
    assert "a1b2" not in json.dumps(simulator.state())


def test_the_estop_refuses_actuators_but_not_stop(start_simulator: Start, connect: Connect) -> None:
    simulator = start_simulator()
    host = connect(simulator)
    host.hello()
    simulator.control(op="estop", pressed=True)
    host.expect("ESTOP", pressed=1)
    gate = host.command("GATE_PULSE", {"ms": 100})
    assert host.reply(gate) is ReplyResult.REFUSED_ESTOP
    stop = host.command("STOP")
    assert host.reply(stop) is ReplyResult.OK
    status = host.expect("STATUS", estop=1)
    assert status.fields["outputs"] == Output.FAULT_LIGHT
    assert simulator.state()["executed"] == [["STOP", {}]]
    simulator.control(op="estop", pressed=False)
    host.expect("ESTOP", pressed=0)
    assert host.reply(host.command("GATE_PULSE", {"ms": 100})) is ReplyResult.OK


def test_a_fault_is_an_event_and_a_status_bit(start_simulator: Start, connect: Connect) -> None:
    simulator = start_simulator()
    host = connect(simulator)
    host.hello()
    simulator.control(op="fault", code=7, active=True)
    host.expect("FAULT", code=7, active=1)
    host.expect("STATUS", faults=1 << 7)


def test_host_silence_puts_the_mcu_in_its_safe_state_until_the_next_hello(
    start_simulator: Start, connect: Connect
) -> None:
    simulator = start_simulator()
    host = connect(simulator)
    host.hello()
    assert host.reply(host.command("GATE_PULSE", {"ms": 10_000})) is ReplyResult.OK
    host.expect("GATE_STATE", state=GateState.OPEN)
    host.heartbeat = False
    status = host.expect("STATUS", linked=0)
    assert time.monotonic() - host.sent_at >= 0.5, "the MCU gave up on the host before 500 ms"
    assert (status.fields["gate"], status.fields["outputs"]) == (GateState.CLOSED, Output.FAULT_LIGHT)
    state = simulator.state()
    assert (state["linked"], state["safe_state"], state["gate"]) == (False, True, "CLOSED")
    # The gate's closing was an event while unlinked: it comes after the next handshake.
    host.heartbeat = True
    host.hello(nonce=2)
    host.expect("GATE_STATE", state=GateState.CLOSED)


def test_a_host_that_never_acks_events_is_given_up_on(start_simulator: Start, connect: Connect) -> None:
    simulator = start_simulator()
    host = connect(simulator)
    host.hello()
    host.ack_events = False  # heartbeats keep coming, but none acknowledges the tap
    simulator.control(op="card", reader=0, uid="04a1b2c3")
    host.expect("STATUS", linked=0)
    assert simulator.process.poll() is None, simulator.log()
    assert "events not acknowledged" in simulator.log()
    assert simulator.state()["safe_state"] is True


def test_a_reboot_shows_a_new_boot_id_in_status(start_simulator: Start, connect: Connect) -> None:
    simulator = start_simulator()
    host = connect(simulator)
    old = host.hello().fields["boot_id"]
    new = simulator.control(op="reboot")["boot_id"]
    assert new != old
    host.expect("STATUS", boot_id=new, linked=0)
    assert host.hello(nonce=3).fields["boot_id"] == new


def test_a_silent_mcu_sends_nothing_then_has_dropped_the_link(
    start_simulator: Start, connect: Connect
) -> None:
    simulator = start_simulator()
    host = connect(simulator)
    host.hello()
    host.expect("STATUS", linked=1)
    simulator.control(op="silence", ms=800)
    # A STATUS sent just before the silence began may still be on the way: look for a gap between two.
    arrivals = [time.monotonic()]
    while True:
        status = host.expect("STATUS")
        arrivals.append(status.at)
        if status.fields["linked"] == 0:
            break
        assert status.at - arrivals[0] < TIMEOUT, f"still linked after its silence; seen: {host.seen[-12:]}"
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps, default=0.0) >= 0.6, f"the MCU spoke during its silence: gaps {gaps}"


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [("--schema-hash-override", 0x12345678, "schema_hash"), ("--proto-major-override", 2, "proto_major")],
)
def test_incompatible_firmware_answers_with_its_own_version_and_stays_unlinked(
    start_simulator: Start, connect: Connect, option: str, value: int, field: str
) -> None:
    simulator = start_simulator(option, hex(value))
    host = connect(simulator)
    ack = host.hello()
    assert ack.fields[field] == value
    assert not host.linked
    host.expect("STATUS", linked=0)
    assert host.reply(host.command("GATE_PULSE", {"ms": 100})) is ReplyResult.NOT_LINKED
    assert simulator.state()["linked"] is False


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json\n", "bad JSON"),
        (b"[1, 2]\n", "a request is a JSON object"),
        (b'{"op": "dance"}\n', "unknown op 'dance'"),
        (b'{"nop": 1}\n', "unknown op None"),
        (b'{"op": "card", "reader": 0, "uid": "04a1b2c"}\n', "card: 'uid' must be a string of hex digits"),
        (b'{"op": "card", "reader": 0, "uid": "04a1"}\n', "4 to 10 bytes, got 2"),
        (b'{"op": "card", "reader": "0", "uid": "04a1b2c3"}\n', "'reader' must be an integer 0..255"),
        (b'{"op": "estop", "pressed": 1}\n', "estop: 'pressed' must be true or false"),
        (b'{"op": "fault", "code": 0, "active": true}\n', "fault code 0 is not 1..15"),
        (b'{"op": "silence", "ms": 0}\n', "silence: 'ms' must be an integer 1..60000"),
        (b"\xff\xfe\n", "bad JSON"),
    ],
)
def test_a_bad_control_request_is_answered_with_the_reason(
    start_simulator: Start, line: bytes, error: str
) -> None:
    simulator = start_simulator()
    answer = simulator.control_raw(line)
    assert answer["ok"] is False
    assert error in answer["error"]
    assert "04a1" not in answer["error"]
    assert simulator.state()["ok"] is True  # and it still answers


def test_sigterm_stops_it_cleanly_and_removes_the_control_socket(start_simulator: Start) -> None:
    simulator = start_simulator()
    simulator.process.send_signal(signal.SIGTERM)
    assert simulator.process.wait(TIMEOUT) == 0, simulator.log()
    assert not simulator.control_path.exists()


def test_every_option_has_help() -> None:
    parser = build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    usage = subprocess.run(
        [sys.executable, "-m", "firmware_bridge.simulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=TIMEOUT * 2,
    ).stdout
    for option in (
        "--board-id",
        "--control",
        "--schema-hash-override",
        "--proto-major-override",
        "--log-level",
    ):
        assert option in usage
