"""Simulated devices behind the MCU protocol: what the MCU simulator drives instead of a real board.

`SimBoard` implements `firmware_bridge.mcu.Board`. It is pure and time-driven (time only through `now`), so
the same board runs in unit tests on simulated time and in the simulator process on the event loop's clock.
Every command is bounded as on the real board: the gate closes again, lights, buzzer and unlocked compartments
switch off at the end of their `ms`, and the wheels stop at the DRIVE deadline. Tests inject what the outside
world does (a card tap, the e-stop, a fault) and read back `state()`, including a log of what ran.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterator
from typing import Final

from firmware_bridge.errors import FirmwareBridgeError
from firmware_bridge.mcu import Snapshot
from firmware_bridge.schema import (
    BY_NAME,
    CARD_UID_BYTES,
    COMPARTMENTS,
    CompartmentState,
    Fields,
    GateState,
    LightPattern,
    Output,
    PayloadError,
    ReplyResult,
    encode_payload,
)

log = logging.getLogger(__name__)

GATE_TRAVEL_S: Final = 0.050  # opening and closing each take this long
# Bit 0 of STATUS.faults belongs to the protocol (mcu.FAULT_EVENT_QUEUE_FULL); board faults use bits 1..15.
FAULT_CODES: Final = range(1, 16)
EXECUTED_KEPT: Final = 2000
ACTUATOR_COMMANDS: Final = frozenset({"GATE_PULSE", "LIGHTS", "BUZZER", "COMPARTMENT_UNLOCK", "DRIVE"})
COMMANDS: Final = ACTUATOR_COMMANDS | {"STOP"}
Json = dict[str, object]


class SimulationError(FirmwareBridgeError):
    """An injection the simulated board cannot carry out (a UID of the wrong length, a fault code unknown)."""


class SimBoard:
    """A gate, lights, a buzzer, 8 compartments, two wheels, card readers, an e-stop and fault inputs.

    It starts in the safe state (as a board does after a reset). While the e-stop is pressed it refuses every
    actuator command and holds the safe state; STOP always runs. The fault light of the safe state goes off
    when an actuator command runs; STOP leaves it as it is, since stopping is not a sign of a healthy link.
    """

    def __init__(self) -> None:
        self._gate = GateState.CLOSED
        self._gate_next: float | None = None  # when the gate moves on from its current state
        self._gate_hold_s = 0.0  # how long it stays open once it is open
        self._lights = (LightPattern.OFF, 0, 0, 0)
        self._lights_until: float | None = None
        self._buzzer_hz = 0
        self._buzzer_until: float | None = None
        self._unlocked_until: list[float | None] = [None] * COMPARTMENTS  # None: locked
        self._drive = (0, 0)
        self._drive_until: float | None = None
        self._estop = False
        self._faults = 0
        self._fault_light = True
        self._events: list[tuple[str, Fields]] = []
        self._executed: deque[tuple[str, Fields]] = deque(maxlen=EXECUTED_KEPT)
        self._counts: Counter[str] = Counter()

    # -- Board -------------------------------------------------------------------------------------------

    def execute(self, command: str, fields: Fields, now: float) -> ReplyResult:
        """Run a command; its fields are checked against the schema again, as firmware would."""
        self._advance(now)
        if command not in COMMANDS:
            return ReplyResult.UNKNOWN_TYPE
        try:
            encode_payload(BY_NAME[command], fields)
        except PayloadError as err:
            log.warning("command refused by the board: %s", err)
            return ReplyResult.BAD_ARGUMENTS
        if self._estop and command != "STOP":
            log.info("command refused: e-stop pressed command=%s", command)
            return ReplyResult.REFUSED_ESTOP
        ints = {name: value for name, value in fields.items() if isinstance(value, int)}
        if command == "GATE_PULSE":
            self._gate_pulse(ints["ms"] / 1000, now)
        elif command == "LIGHTS":
            pattern = LightPattern(ints["pattern"])
            if pattern is LightPattern.OFF:
                self._lights, self._lights_until = (LightPattern.OFF, 0, 0, 0), None
            else:
                self._lights = (pattern, ints["red"], ints["green"], ints["blue"])
                self._lights_until = now + ints["ms"] / 1000
        elif command == "BUZZER":
            self._buzzer_hz, self._buzzer_until = ints["freq_hz"], now + ints["ms"] / 1000
        elif command == "COMPARTMENT_UNLOCK":
            index = ints["index"]
            if self._unlocked_until[index] is None:
                self._emit("COMPARTMENT_STATE", index=index, state=CompartmentState.UNLOCKED)
            self._unlocked_until[index] = now + ints["ms"] / 1000
        elif command == "DRIVE":
            self._drive = (ints["left_mm_s"], ints["right_mm_s"])
            self._drive_until = now + ints["deadline_ms"] / 1000
        else:
            self._all_off()
        if command != "STOP":
            self._fault_light = False
        self._executed.append((command, fields))  # made JSON-able in state(), off the command's path
        self._counts[command] += 1
        log.debug("executed command=%s", command)
        return ReplyResult.OK

    def safe_state(self, now: float) -> None:
        """Motors off, gate closed, compartments locked, buzzer and lights off, fault light on."""
        self._advance(now)
        self._all_off()
        self._fault_light = True

    def poll(self, now: float) -> list[tuple[str, Fields]]:
        self._advance(now)
        events, self._events = self._events, []
        return events

    def snapshot(self, now: float) -> Snapshot:
        self._advance(now)
        return Snapshot(
            gate=int(self._gate), estop=self._estop, outputs=int(self.outputs), faults=self._faults
        )

    # -- the outside world -------------------------------------------------------------------------------

    def tap_card(self, reader: int, uid: bytes, now: float) -> None:
        """A card on `reader`; the UID goes into the CARD_READ event and nowhere else (no log, no state)."""
        self._advance(now)
        if not 0 <= reader <= 0xFF:
            raise SimulationError(f"card reader {reader} is not 0..255")
        low, high = CARD_UID_BYTES
        if not low <= len(uid) <= high:
            raise SimulationError(f"a card UID has {low} to {high} bytes, got {len(uid)}")
        log.debug("card tapped reader=%d", reader)
        self._emit("CARD_READ", reader=reader, uid=bytes(uid))

    def set_estop(self, pressed: bool, now: float) -> None:
        """Press or release the e-stop; pressing it puts the board in its safe state at once."""
        self._advance(now)
        if pressed == self._estop:
            return
        self._estop = pressed
        self._emit("ESTOP", pressed=int(pressed))
        if pressed:
            self.safe_state(now)

    def set_fault(self, code: int, active: bool, now: float) -> None:
        """A fault input appears or clears: a FAULT event and bit `1 << code` of STATUS.faults."""
        self._advance(now)
        if code not in FAULT_CODES:
            raise SimulationError(f"fault code {code} is not {FAULT_CODES.start}..{FAULT_CODES.stop - 1}")
        bit = 1 << code
        if bool(self._faults & bit) == active:
            return
        self._faults = self._faults | bit if active else self._faults & ~bit
        self._emit("FAULT", code=code, active=int(active))

    # -- reading back --------------------------------------------------------------------------------------

    @property
    def outputs(self) -> Output:
        """Which actuators are driven right now (as of the last call that took a `now`)."""
        outputs = Output(0)
        if self._gate is not GateState.CLOSED:
            outputs |= Output.GATE
        if self._lights[0] is not LightPattern.OFF:
            outputs |= Output.LIGHTS
        if self._buzzer_hz:
            outputs |= Output.BUZZER
        if self._drive != (0, 0):
            outputs |= Output.DRIVE
        if any(until is not None for until in self._unlocked_until):
            outputs |= Output.COMPARTMENT
        if self._fault_light:
            outputs |= Output.FAULT_LIGHT
        return outputs

    def state(self, now: float) -> Json:
        """Everything a test may check, as JSON-able values; card UIDs are not in it."""
        self._advance(now)
        pattern, red, green, blue = self._lights
        return {
            "gate": self._gate.name,
            "estop": self._estop,
            "outputs": int(self.outputs),
            "faults": self._faults,
            "safe_state": self.outputs == Output.FAULT_LIGHT,
            "fault_light": self._fault_light,
            "drive": {"left_mm_s": self._drive[0], "right_mm_s": self._drive[1]},
            "lights": {"pattern": pattern.name, "red": red, "green": green, "blue": blue},
            "buzzer": {"freq_hz": self._buzzer_hz},
            "compartments": [
                (CompartmentState.LOCKED if until is None else CompartmentState.UNLOCKED).name
                for until in self._unlocked_until
            ],
            "executed_count": self._counts.total(),
            "command_counts": dict(self._counts),
            "executed": [[name, _jsonable(fields)] for name, fields in self._executed],
        }

    # -- inside --------------------------------------------------------------------------------------------

    def _emit(self, name: str, **fields: int | bytes) -> None:
        self._events.append((name, {key: int(v) if isinstance(v, int) else v for key, v in fields.items()}))

    def _gate_pulse(self, hold_s: float, now: float) -> None:
        if self._gate is GateState.OPEN:
            self._gate_next = now + hold_s  # a new pulse while open keeps it open that much longer
            return
        self._gate_hold_s = hold_s
        if self._gate is not GateState.OPENING:
            self._set_gate(GateState.OPENING, now + GATE_TRAVEL_S)

    def _set_gate(self, state: GateState, next_at: float | None) -> None:
        self._gate, self._gate_next = state, next_at
        self._emit("GATE_STATE", state=state)

    def _all_off(self) -> None:
        if self._gate is not GateState.CLOSED:
            self._set_gate(GateState.CLOSED, None)
        self._gate_next = None
        for index, until in enumerate(self._unlocked_until):
            if until is not None:
                self._lock(index)
        self._lights, self._lights_until = (LightPattern.OFF, 0, 0, 0), None
        self._buzzer_hz, self._buzzer_until = 0, None
        self._drive, self._drive_until = (0, 0), None

    def _lock(self, index: int) -> None:
        self._unlocked_until[index] = None
        self._emit("COMPARTMENT_STATE", index=index, state=CompartmentState.LOCKED)

    def _timers(self) -> Iterator[tuple[float, str, int]]:
        """Every pending timer as (when, device, index), to run them in the order they fall due."""
        for when, device in (
            (self._gate_next, "gate"),
            (self._lights_until, "lights"),
            (self._buzzer_until, "buzzer"),
            (self._drive_until, "drive"),
        ):
            if when is not None:
                yield when, device, 0
        for index, until in enumerate(self._unlocked_until):
            if until is not None:
                yield until, "compartment", index

    def _advance(self, now: float) -> None:
        """Run the timers due by `now` in time order, each from the moment it fell due, so a late poll
        yields the same states and events as a punctual one."""
        while True:
            due = [timer for timer in self._timers() if timer[0] <= now]
            if not due:
                return
            at, device, index = min(due)
            if device == "gate":
                if self._gate is GateState.OPENING:
                    self._set_gate(GateState.OPEN, at + self._gate_hold_s)
                elif self._gate is GateState.OPEN:
                    self._set_gate(GateState.CLOSING, at + GATE_TRAVEL_S)
                else:
                    self._set_gate(GateState.CLOSED, None)
            elif device == "lights":
                self._lights, self._lights_until = (LightPattern.OFF, 0, 0, 0), None
            elif device == "buzzer":
                self._buzzer_hz, self._buzzer_until = 0, None
            elif device == "drive":
                self._drive, self._drive_until = (0, 0), None
            else:
                self._lock(index)


def _jsonable(fields: Fields) -> Json:
    return {name: value.hex() if isinstance(value, bytes) else value for name, value in fields.items()}
