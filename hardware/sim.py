"""The robot's devices simulated in-process, for tests and the demo: `[hardware] backend = "simulated"`.

They behave as the MCU does (PROTOCOL.md §3.3-3.6): arguments checked against the same schema bounds, every
command bounded in time, actuators refused while the e-stop is pressed, the e-stop and `Drive.stop` putting
every actuator in its safe state. Time is the event loop's (or an injected clock), so a state such as "the
gate is open" ends by itself when its milliseconds are up. Tests and the demo act as the outside world through
`tap_card`, `press_estop`, `release_estop`, `open_door` and `close_door`, and read `commands`, the history
of what was accepted.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from typing import Final

from firmware_bridge.schema import BY_NAME, COMPARTMENTS, CompartmentState, GateState, LightPattern
from hardware.clock import Clock
from hardware.devices import CardTap, CardUid, check_arguments, check_compartment
from hardware.state import EStopLatch, TapBuffer

log = logging.getLogger(__name__)

_READER_BOUNDS: Final = next(f for f in BY_NAME["CARD_READ"].fields if f.name == "reader").bounds()


class SimDevices:
    """One simulated robot: the device objects (`gate`, `lights`, ...) and the world's hand on them."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock
        self.latch = EStopLatch()
        self.tap_buffer = TapBuffer()
        self.commands: list[tuple[float, str, dict[str, int]]] = []
        self.gate = SimGate(self)
        self.lights = SimLights(self)
        self.buzzer = SimBuzzer(self)
        self.compartments = SimCompartments(self)
        self.drive = SimDrive(self)
        self.card_reader = SimCardReader(self)
        self.estop = SimEStop(self)

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def accept(self, command: str, call: str, **values: int) -> float:
        """Check a command as the MCU would, record it, and return the time it runs at."""
        check_arguments(command, call, values)
        if command != "STOP":
            self.latch.refuse_if_pressed(call)
        now = self.now()
        self.commands.append((now, call, values))
        log.debug("simulated %s %s", call, values)
        return now

    def safe_state(self) -> None:
        """What the MCU does on STOP, on the e-stop and on losing the host: nothing driven."""
        self.gate.safe_state()
        self.lights.safe_state()
        self.buzzer.safe_state()
        self.compartments.safe_state()
        self.drive.safe_state()

    # -- the outside world ------------------------------------------------------------------------------

    def tap_card(self, reader: int, uid: bytes | CardUid) -> None:
        """A card tapped on a reader; the UID is delivered to the agent and never logged."""
        low, high = _READER_BOUNDS
        if not low <= reader <= high:
            raise ValueError(f"tap_card: reader={reader} is outside {low}..{high}")
        self.tap_buffer.put(CardTap(reader, uid if isinstance(uid, CardUid) else CardUid(uid)))
        log.debug("simulated card tap reader=%d", reader)

    def press_estop(self) -> None:
        self.latch.set(True, "simulation")
        self.safe_state()

    def release_estop(self) -> None:
        self.latch.set(False, "simulation")

    def open_door(self, index: int) -> None:
        """A passenger opens a compartment's door; only an unlocked one opens."""
        self.compartments.open_door(index)

    def close_door(self, index: int) -> None:
        self.compartments.close_door(index)

    async def close(self) -> None:
        """Nothing to release; here so that every backend closes the same way."""


class SimGate:
    def __init__(self, sim: SimDevices) -> None:
        self._sim = sim
        self._open_until = -math.inf

    async def pulse(self, ms: int) -> None:
        self._open_until = self._sim.accept("GATE_PULSE", "gate.pulse", ms=ms) + ms / 1000

    @property
    def state(self) -> GateState:
        return GateState.OPEN if self._sim.now() < self._open_until else GateState.CLOSED

    def safe_state(self) -> None:
        self._open_until = -math.inf


class SimLights:
    def __init__(self, sim: SimDevices) -> None:
        self._sim = sim
        self._showing: tuple[LightPattern, int, int, int] = (LightPattern.OFF, 0, 0, 0)
        self._until = -math.inf

    async def show(self, pattern: LightPattern, red: int, green: int, blue: int, ms: int) -> None:
        now = self._sim.accept(
            "LIGHTS", "lights.show", pattern=pattern, red=red, green=green, blue=blue, ms=ms
        )
        self._showing, self._until = (LightPattern(pattern), red, green, blue), now + ms / 1000

    @property
    def showing(self) -> tuple[LightPattern, int, int, int]:
        """Pattern and colour now; off once the last pattern's time is up."""
        return self._showing if self._sim.now() < self._until else (LightPattern.OFF, 0, 0, 0)

    def safe_state(self) -> None:
        self._until = -math.inf


class SimBuzzer:
    def __init__(self, sim: SimDevices) -> None:
        self._sim = sim
        self._freq_hz = 0
        self._until = -math.inf

    async def beep(self, freq_hz: int, ms: int) -> None:
        now = self._sim.accept("BUZZER", "buzzer.beep", freq_hz=freq_hz, ms=ms)
        self._freq_hz, self._until = freq_hz, now + ms / 1000

    @property
    def sounding(self) -> int:
        """The frequency sounding now, 0 when silent."""
        return self._freq_hz if self._sim.now() < self._until else 0

    def safe_state(self) -> None:
        self._until = -math.inf


class SimCompartments:
    def __init__(self, sim: SimDevices) -> None:
        self._sim = sim
        self._unlocked_until = [-math.inf] * COMPARTMENTS
        self._open: set[int] = set()

    async def unlock(self, index: int, ms: int) -> None:
        now = self._sim.accept("COMPARTMENT_UNLOCK", "compartments.unlock", index=index, ms=ms)
        self._unlocked_until[index] = now + ms / 1000

    def state(self, index: int) -> CompartmentState:
        check_compartment(index)
        if index in self._open:
            return CompartmentState.OPEN
        if self._sim.now() < self._unlocked_until[index]:
            return CompartmentState.UNLOCKED
        return CompartmentState.LOCKED

    def open_door(self, index: int) -> None:
        if self.state(index) is CompartmentState.LOCKED:
            raise ValueError(f"compartment {index} is locked: its door cannot open")
        self._open.add(index)

    def close_door(self, index: int) -> None:
        check_compartment(index)
        self._open.discard(index)

    def safe_state(self) -> None:
        # An open door stays open (nothing can push it shut); it locks when closed.
        self._unlocked_until = [-math.inf] * COMPARTMENTS


class SimDrive:
    def __init__(self, sim: SimDevices) -> None:
        self._sim = sim
        self._speeds = (0, 0)
        self._until = -math.inf

    async def move(self, left_mm_s: int, right_mm_s: int, deadline_ms: int) -> None:
        now = self._sim.accept(
            "DRIVE", "drive.move", left_mm_s=left_mm_s, right_mm_s=right_mm_s, deadline_ms=deadline_ms
        )
        self._speeds, self._until = (left_mm_s, right_mm_s), now + deadline_ms / 1000

    async def stop(self) -> None:
        self._sim.accept("STOP", "drive.stop")
        self._sim.safe_state()

    @property
    def speeds(self) -> tuple[int, int]:
        """Wheel speeds now (mm/s); zero once the deadline has passed."""
        return self._speeds if self._sim.now() < self._until else (0, 0)

    def safe_state(self) -> None:
        self._until = -math.inf


class SimCardReader:
    def __init__(self, sim: SimDevices) -> None:
        self._sim = sim

    def taps(self) -> AsyncIterator[CardTap]:
        return self._sim.tap_buffer.taps()


class SimEStop:
    def __init__(self, sim: SimDevices) -> None:
        self._sim = sim

    @property
    def pressed(self) -> bool:
        return self._sim.latch.pressed

    def changes(self) -> AsyncIterator[bool]:
        return self._sim.latch.changes()
