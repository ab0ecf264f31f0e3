"""The simulated board on simulated time: each command's effect and end, the events it reports, the e-stop,
the safe state and STOP, and what `state()` tells a test."""

from __future__ import annotations

import json
import logging

import pytest

from firmware_bridge.mcu import Board
from firmware_bridge.schema import CompartmentState, Fields, GateState, LightPattern, Output, ReplyResult
from firmware_bridge.sim_board import EXECUTED_KEPT, GATE_TRAVEL_S, SimBoard, SimulationError

Event = tuple[str, Fields]
EPS = 1e-6  # timers fall due at sums of floats: look just before and just after
ACTUATORS: list[tuple[str, Fields]] = [
    ("GATE_PULSE", {"ms": 100}),
    ("LIGHTS", {"pattern": LightPattern.BLINK, "red": 1, "green": 2, "blue": 3, "ms": 100}),
    ("BUZZER", {"freq_hz": 440, "ms": 100}),
    ("COMPARTMENT_UNLOCK", {"index": 2, "ms": 100}),
    ("DRIVE", {"left_mm_s": 100, "right_mm_s": -100, "deadline_ms": 100}),
]


def gate(state: GateState) -> Event:
    return ("GATE_STATE", {"state": state})


def compartment(index: int, state: CompartmentState) -> Event:
    return ("COMPARTMENT_STATE", {"index": index, "state": state})


def outputs(board: SimBoard, now: float) -> Output:
    return Output(board.snapshot(now).outputs)


def run_ok(board: SimBoard, command: str, fields: Fields, now: float) -> None:
    assert board.execute(command, fields, now) is ReplyResult.OK


def test_it_is_a_board_and_starts_in_the_safe_state() -> None:
    board: Board = SimBoard()
    snapshot = board.snapshot(0.0)
    assert (snapshot.gate, snapshot.estop, snapshot.faults) == (GateState.CLOSED, False, 0)
    assert snapshot.outputs == Output.FAULT_LIGHT
    assert board.poll(0.0) == []


def test_a_gate_pulse_opens_holds_and_closes_reporting_each_state() -> None:
    board = SimBoard()
    run_ok(board, "GATE_PULSE", {"ms": 200}, 10.0)
    assert board.poll(10.0) == [gate(GateState.OPENING)]
    assert outputs(board, 10.0) == Output.GATE  # and the fault light went off: a command ran
    opened, closing = 10.0 + GATE_TRAVEL_S, 10.0 + GATE_TRAVEL_S + 0.200
    closed = closing + GATE_TRAVEL_S
    for due, state in [(opened, GateState.OPEN), (closing, GateState.CLOSING), (closed, GateState.CLOSED)]:
        assert board.poll(due - EPS) == [], state
        assert board.poll(due + EPS) == [gate(state)]
    assert outputs(board, 11.0) == Output(0)


def test_a_late_poll_gets_every_state_in_order() -> None:
    board = SimBoard()
    run_ok(board, "GATE_PULSE", {"ms": 100}, 0.0)
    run_ok(board, "COMPARTMENT_UNLOCK", {"index": 1, "ms": 120}, 0.0)
    assert board.poll(5.0) == [
        gate(GateState.OPENING),
        compartment(1, CompartmentState.UNLOCKED),
        gate(GateState.OPEN),  # at 0.05
        compartment(1, CompartmentState.LOCKED),  # at 0.12
        gate(GateState.CLOSING),  # at 0.15
        gate(GateState.CLOSED),  # at 0.20
    ]


def test_a_pulse_while_open_keeps_the_gate_open_longer() -> None:
    board = SimBoard()
    run_ok(board, "GATE_PULSE", {"ms": 100}, 0.0)
    board.poll(0.1)
    run_ok(board, "GATE_PULSE", {"ms": 500}, 0.1)
    assert board.poll(0.55) == []
    assert board.snapshot(0.55).gate == GateState.OPEN
    assert board.poll(0.6) == [gate(GateState.CLOSING)]


def test_a_pulse_while_closing_opens_the_gate_again() -> None:
    board = SimBoard()
    run_ok(board, "GATE_PULSE", {"ms": 10}, 0.0)
    assert board.poll(0.07)[-1] == gate(GateState.CLOSING)
    run_ok(board, "GATE_PULSE", {"ms": 10}, 0.07)
    assert board.poll(0.07) == [gate(GateState.OPENING)]


def test_lights_show_their_pattern_until_ms() -> None:
    board = SimBoard()
    run_ok(
        board, "LIGHTS", {"pattern": LightPattern.PULSE, "red": 255, "green": 128, "blue": 0, "ms": 300}, 0.0
    )
    assert board.state(0.299)["lights"] == {"pattern": "PULSE", "red": 255, "green": 128, "blue": 0}
    assert outputs(board, 0.299) == Output.LIGHTS
    assert board.state(0.3)["lights"] == {"pattern": "OFF", "red": 0, "green": 0, "blue": 0}
    assert outputs(board, 0.3) == Output(0)


def test_lights_off_switches_them_off_at_once() -> None:
    board = SimBoard()
    run_ok(board, "LIGHTS", {"pattern": LightPattern.SOLID, "red": 1, "green": 1, "blue": 1, "ms": 1000}, 0.0)
    run_ok(board, "LIGHTS", {"pattern": LightPattern.OFF, "red": 9, "green": 9, "blue": 9, "ms": 1000}, 0.1)
    assert board.state(0.1)["lights"] == {"pattern": "OFF", "red": 0, "green": 0, "blue": 0}


def test_the_buzzer_sounds_until_ms() -> None:
    board = SimBoard()
    run_ok(board, "BUZZER", {"freq_hz": 2000, "ms": 250}, 1.0)
    assert board.state(1.2)["buzzer"] == {"freq_hz": 2000}
    assert outputs(board, 1.2) == Output.BUZZER
    assert board.state(1.25)["buzzer"] == {"freq_hz": 0}


def test_a_compartment_unlocks_for_ms_and_locks_again() -> None:
    board = SimBoard()
    run_ok(board, "COMPARTMENT_UNLOCK", {"index": 7, "ms": 1000}, 0.0)
    assert board.poll(0.0) == [compartment(7, CompartmentState.UNLOCKED)]
    assert board.state(0.5)["compartments"] == ["LOCKED"] * 7 + ["UNLOCKED"]
    assert outputs(board, 0.5) == Output.COMPARTMENT
    # Unlocking it again extends the time without a second UNLOCKED event.
    run_ok(board, "COMPARTMENT_UNLOCK", {"index": 7, "ms": 1000}, 0.5)
    assert board.poll(1.4) == []
    assert board.poll(1.5) == [compartment(7, CompartmentState.LOCKED)]
    assert outputs(board, 1.5) == Output(0)


def test_drive_runs_the_wheels_until_the_deadline_unless_a_new_drive_comes() -> None:
    board = SimBoard()
    run_ok(board, "DRIVE", {"left_mm_s": 300, "right_mm_s": -1500, "deadline_ms": 200}, 0.0)
    assert board.state(0.15)["drive"] == {"left_mm_s": 300, "right_mm_s": -1500}
    run_ok(board, "DRIVE", {"left_mm_s": 500, "right_mm_s": 500, "deadline_ms": 200}, 0.15)
    assert board.state(0.3)["drive"] == {"left_mm_s": 500, "right_mm_s": 500}
    assert outputs(board, 0.3) == Output.DRIVE
    assert board.state(0.35)["drive"] == {"left_mm_s": 0, "right_mm_s": 0}
    assert outputs(board, 0.35) == Output(0)


def busy_board(now: float) -> SimBoard:
    board = SimBoard()
    for command, fields in ACTUATORS:
        run_ok(board, command, fields, now)
    board.poll(now)
    assert (
        outputs(board, now) == Output.GATE | Output.LIGHTS | Output.BUZZER | Output.COMPARTMENT | Output.DRIVE
    )
    return board


def test_stop_switches_everything_off_and_reports_it() -> None:
    board = busy_board(0.0)
    run_ok(board, "STOP", {}, 0.01)
    assert board.poll(0.01) == [gate(GateState.CLOSED), compartment(2, CompartmentState.LOCKED)]
    assert outputs(board, 0.01) == Output(0)  # a STOP is not a fault: the fault light stays off
    assert board.poll(5.0) == []  # and no timer of the stopped commands fires later


def test_the_safe_state_switches_everything_off_and_lights_the_fault_light() -> None:
    board = busy_board(0.0)
    board.safe_state(0.01)
    assert board.poll(0.01) == [gate(GateState.CLOSED), compartment(2, CompartmentState.LOCKED)]
    assert outputs(board, 0.01) == Output.FAULT_LIGHT
    assert board.state(0.01)["safe_state"] is True
    run_ok(board, "BUZZER", {"freq_hz": 100, "ms": 1}, 0.02)
    assert outputs(board, 0.02) == Output.BUZZER  # the first command that runs ends the fault light


def test_the_estop_refuses_every_actuator_holds_the_safe_state_and_allows_stop() -> None:
    board = busy_board(0.0)
    board.set_estop(True, 0.01)
    assert board.poll(0.01) == [
        ("ESTOP", {"pressed": 1}),
        gate(GateState.CLOSED),
        compartment(2, CompartmentState.LOCKED),
    ]
    for command, fields in ACTUATORS:
        assert board.execute(command, fields, 0.02) is ReplyResult.REFUSED_ESTOP, command
    assert board.execute("STOP", {}, 0.02) is ReplyResult.OK
    snapshot = board.snapshot(0.02)
    assert (snapshot.estop, snapshot.outputs) == (True, Output.FAULT_LIGHT)
    assert board.poll(0.02) == []
    board.set_estop(True, 0.03)  # pressed again: nothing changed, nothing to report
    board.set_estop(False, 0.04)
    assert board.poll(0.04) == [("ESTOP", {"pressed": 0})]
    assert board.snapshot(0.04).outputs == Output.FAULT_LIGHT  # releasing moves nothing
    run_ok(board, "GATE_PULSE", {"ms": 10}, 0.05)


def test_a_card_tap_is_an_event_with_reader_and_uid_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    board = SimBoard()
    uid = bytes.fromhex("04a1b2c3d4e5f6")
    board.tap_card(3, uid, 0.0)
    assert board.poll(0.0) == [("CARD_READ", {"reader": 3, "uid": uid})]
    assert uid.hex() not in caplog.text
    assert uid.hex() not in json.dumps(board.state(0.0))


@pytest.mark.parametrize(
    ("reader", "uid", "match"),
    [(0, b"\x01\x02\x03", "4 to 10 bytes, got 3"), (256, b"\x01" * 4, "reader 256")],
)
def test_a_bad_card_tap_is_refused(reader: int, uid: bytes, match: str) -> None:
    board = SimBoard()
    with pytest.raises(SimulationError, match=match):
        board.tap_card(reader, uid, 0.0)
    assert board.poll(0.0) == []


def test_faults_set_and_clear_their_bit_and_report_each_change() -> None:
    board = SimBoard()
    board.set_fault(7, True, 0.0)
    board.set_fault(7, True, 0.1)  # already active: no second event
    board.set_fault(3, True, 0.2)
    assert board.snapshot(0.2).faults == 1 << 7 | 1 << 3
    board.set_fault(7, False, 0.3)
    assert board.snapshot(0.3).faults == 1 << 3
    assert board.poll(0.3) == [
        ("FAULT", {"code": 7, "active": 1}),
        ("FAULT", {"code": 3, "active": 1}),
        ("FAULT", {"code": 7, "active": 0}),
    ]


@pytest.mark.parametrize("code", [0, 16])
def test_a_fault_code_without_a_bit_is_refused(code: int) -> None:
    # Bit 0 is the protocol's own (event queue full); STATUS.faults has 16 bits.
    with pytest.raises(SimulationError, match=f"fault code {code} is not 1..15"):
        SimBoard().set_fault(code, True, 0.0)


@pytest.mark.parametrize(
    ("command", "fields", "result"),
    [
        ("GATE_PULSE", {"ms": 0}, ReplyResult.BAD_ARGUMENTS),
        ("GATE_PULSE", {}, ReplyResult.BAD_ARGUMENTS),
        ("COMPARTMENT_UNLOCK", {"index": 8, "ms": 10}, ReplyResult.BAD_ARGUMENTS),
        ("DRIVE", {"left_mm_s": 0, "right_mm_s": 0, "deadline_ms": 501}, ReplyResult.BAD_ARGUMENTS),
        ("CARD_READ", {}, ReplyResult.UNKNOWN_TYPE),
        ("REBOOT", {}, ReplyResult.UNKNOWN_TYPE),
    ],
)
def test_the_board_checks_commands_itself(command: str, fields: Fields, result: ReplyResult) -> None:
    board = SimBoard()
    assert board.execute(command, fields, 0.0) is result
    assert board.state(0.0)["executed_count"] == 0
    assert board.snapshot(0.0).outputs == Output.FAULT_LIGHT


def test_state_is_json_and_logs_what_ran_ok() -> None:
    board = SimBoard()
    run_ok(board, "GATE_PULSE", {"ms": 10}, 0.0)
    run_ok(board, "STOP", {}, 0.0)
    board.set_estop(True, 0.0)
    board.execute("BUZZER", {"freq_hz": 100, "ms": 1}, 0.0)  # refused: not in the log
    state = json.loads(json.dumps(board.state(0.0)))
    assert state["executed"] == [["GATE_PULSE", {"ms": 10}], ["STOP", {}]]
    assert state["executed_count"] == 2
    assert state["command_counts"] == {"GATE_PULSE": 1, "STOP": 1}
    assert (state["gate"], state["estop"], state["safe_state"]) == ("CLOSED", True, True)


def test_the_log_keeps_the_last_entries_and_counts_them_all() -> None:
    board = SimBoard()
    for n in range(EXECUTED_KEPT + 5):
        run_ok(board, "BUZZER", {"freq_hz": 100 + n, "ms": 1}, n * 0.01)
    state = board.state(100.0)
    executed = state["executed"]
    assert isinstance(executed, list)
    assert len(executed) == EXECUTED_KEPT
    assert executed[0] == ["BUZZER", {"freq_hz": 105, "ms": 1}]
    assert state["executed_count"] == EXECUTED_KEPT + 5
