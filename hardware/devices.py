"""What the agent can do with the robot's devices: one Protocol per device, whatever drives it.

Each Protocol has an MCU backend (`hardware.mcu`), an in-process simulation (`hardware.sim`), and for host
GPIO a gpiod backend and a fake (`hardware.gpio`); robot.toml chooses (`hardware.factory`). Every actuator
command is bounded in time, as the MCU protocol requires (PROTOCOL.md §3.3), and its arguments are checked
against the bounds in `firmware_bridge.schema` by every backend, so a simulated run refuses exactly what the
real robot would. While the e-stop is pressed every actuator command raises `EStopPressedError`; only
`Drive.stop` goes through.

A card UID is an identifier that must never reach a log (STYLE.md): it travels as `CardUid`, whose repr and
str show only its length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from firmware_bridge.schema import BY_NAME, COMPARTMENTS, CompartmentState, GateState, LightPattern

__all__ = [
    "COMPARTMENTS",
    "Buzzer",
    "CardReader",
    "CardTap",
    "CardUid",
    "CompartmentState",
    "Compartments",
    "DigitalIn",
    "DigitalOut",
    "Drive",
    "EStop",
    "Edge",
    "EdgeEvent",
    "Gate",
    "GateState",
    "LightPattern",
    "Lights",
    "check_arguments",
    "check_compartment",
]

_UID_BYTES = BY_NAME["CARD_READ"].fields[-1].bounds()


def check_arguments(command: str, call: str, values: Mapping[str, int]) -> None:
    """Check a command's arguments against the schema's bounds (the one source both MCU and simulation use);
    raise `ValueError` naming the call, the argument and its range."""
    message = BY_NAME[command]
    assert sorted(values) == sorted(f.name for f in message.fields), f"{call}: wrong fields for {command}"
    for field in message.fields:
        value = values[field.name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{call}: {field.name} must be an integer, got {value!r}")
        low, high = field.bounds()
        if not low <= value <= high:
            raise ValueError(f"{call}: {field.name}={value} is outside {low}..{high}")


def check_compartment(index: int) -> None:
    if not 0 <= index < COMPARTMENTS:
        raise ValueError(f"compartment index {index} is outside 0..{COMPARTMENTS - 1}")


@dataclass(frozen=True, repr=False)
class CardUid:
    """A card's UID. `value` is for the agent to HMAC; repr and str never show it, so it cannot be logged
    by accident (a UID is an identifier: shared/notes/serial-facts.md, "Auth cards")."""

    value: bytes

    def __post_init__(self) -> None:
        low, high = _UID_BYTES
        if not isinstance(self.value, bytes) or not low <= len(self.value) <= high:
            size = len(self.value) if isinstance(self.value, bytes) else type(self.value).__name__
            raise ValueError(f"a card UID is {low}..{high} bytes, got {size}")

    def __repr__(self) -> str:
        return f"CardUid(<{len(self.value)} bytes>)"

    __str__ = __repr__


@dataclass(frozen=True)
class CardTap:
    """A card was tapped on reader number `reader`."""

    reader: int
    uid: CardUid


Edge = Literal["rising", "falling", "both"]


@dataclass(frozen=True)
class EdgeEvent:
    """An input changed: `at` is in seconds on the monotonic clock (asyncio's loop time on Linux)."""

    edge: Literal["rising", "falling"]
    at: float


class Gate(Protocol):
    """The passenger gate: opened for a bounded time, then it closes by itself."""

    async def pulse(self, ms: int) -> None:
        """Open the gate for `ms` (1..10000) milliseconds."""
        ...

    @property
    def state(self) -> GateState:
        """The gate's latest known state."""
        ...


class Lights(Protocol):
    async def show(self, pattern: LightPattern, red: int, green: int, blue: int, ms: int) -> None:
        """Show a pattern in a colour (0..255 each) for `ms` (1..60000) milliseconds."""
        ...


class Buzzer(Protocol):
    async def beep(self, freq_hz: int, ms: int) -> None:
        """Sound at `freq_hz` (100..8000) for `ms` (1..5000) milliseconds."""
        ...


class Compartments(Protocol):
    """The lockers (0..7); one unlocks for a bounded time and locks again when closed after that."""

    async def unlock(self, index: int, ms: int) -> None:
        """Unlock compartment `index` for `ms` (1..30000) milliseconds."""
        ...

    def state(self, index: int) -> CompartmentState:
        """Compartment `index`'s latest known state."""
        ...


class Drive(Protocol):
    async def move(self, left_mm_s: int, right_mm_s: int, deadline_ms: int) -> None:
        """Wheel speeds (-1500..1500 mm/s) until `deadline_ms` (1..500) from now; repeat to keep moving."""
        ...

    async def stop(self) -> None:
        """Every actuator to its safe state now (the MCU's STOP: not only the wheels). Works while the
        e-stop is pressed."""
        ...


class CardReader(Protocol):
    def taps(self) -> AsyncIterator[CardTap]:
        """Taps in the order they happened. Taps wait in a small buffer until read; each is delivered to one
        reader of `taps()` (the agent has one)."""
        ...


class EStop(Protocol):
    @property
    def pressed(self) -> bool:
        """Whether the e-stop is pressed, as last known."""
        ...

    def changes(self) -> AsyncIterator[bool]:
        """Each change from the call on (True: pressed); every caller gets its own iterator."""
        ...


class DigitalIn(Protocol):
    """A host GPIO input (a button, a door switch)."""

    @property
    def value(self) -> bool: ...

    async def wait_edge(self, edge: Edge = "both") -> EdgeEvent:
        """Wait for the next matching edge after the call; bound it with `asyncio.timeout` where called."""
        ...

    def close(self) -> None: ...


class DigitalOut(Protocol):
    """A host GPIO output (a relay, an indicator)."""

    @property
    def value(self) -> bool: ...

    async def set(self, value: bool) -> None:
        """Drive the output. Async like every actuator, so that a backend needing I/O fits the same shape."""
        ...

    def close(self) -> None: ...
