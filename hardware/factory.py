"""Opening the devices robot.toml asks for: `[hardware] backend` and `[hardware.gpio] backend`.

The agent calls these with its config's values (hardware never imports robot_agent) and from then on sees only
the Protocols of `hardware.devices`, whichever backend is behind them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, assert_never

from firmware_bridge.client import McuClient
from hardware.devices import (
    Buzzer,
    CardReader,
    Compartments,
    DigitalIn,
    DigitalOut,
    Drive,
    EStop,
    Gate,
    Lights,
)
from hardware.gpio import FakeDigitalIn, FakeDigitalOut, GpiodDigitalIn, GpiodDigitalOut, Pull
from hardware.mcu import McuDevices
from hardware.sim import SimDevices

DevicesBackend = Literal["simulated", "mcu"]
GpioBackend = Literal["simulated", "gpiod"]


@dataclass(frozen=True)
class Devices:
    """Every device of the robot, and the backend that owns them (closed by `close()`)."""

    gate: Gate
    lights: Lights
    buzzer: Buzzer
    compartments: Compartments
    drive: Drive
    card_reader: CardReader
    estop: EStop
    backend: SimDevices | McuDevices

    @property
    def simulator(self) -> SimDevices | None:
        """The simulation's hand on the world (tap a card, press the e-stop), when simulated."""
        return self.backend if isinstance(self.backend, SimDevices) else None

    @property
    def mcu(self) -> McuDevices | None:
        """The MCU link (to wait for it, or show its counters), when there is one."""
        return self.backend if isinstance(self.backend, McuDevices) else None

    async def close(self) -> None:
        await self.backend.close()


async def open_devices(backend: DevicesBackend, serial_url: str | None, baudrate: int) -> Devices:
    """Open the devices. The MCU backend returns at once and links in the background: until it is linked,
    commands raise `DeviceUnavailableError` (the agent works offline meanwhile)."""
    devices: SimDevices | McuDevices
    if backend == "simulated":
        devices = SimDevices()
    elif backend == "mcu":
        if not serial_url:
            raise ValueError('the "mcu" hardware backend needs serial_url (a device path or a pyserial URL)')
        devices = McuDevices(McuClient(serial_url, baudrate=baudrate))
        devices.start()
    else:
        assert_never(backend)
    return Devices(
        gate=devices.gate,
        lights=devices.lights,
        buzzer=devices.buzzer,
        compartments=devices.compartments,
        drive=devices.drive,
        card_reader=devices.card_reader,
        estop=devices.estop,
        backend=devices,
    )


def open_digital_in(
    backend: GpioBackend,
    chip: str,
    line: int,
    *,
    active_low: bool = False,
    bias: Pull = "as-is",
    debounce_ms: int = 0,
) -> DigitalIn:
    """A host GPIO input; call from inside the event loop (gpiod's edges wake it)."""
    if backend == "simulated":
        return FakeDigitalIn(f"simulated GPIO {chip} line {line}")
    if backend == "gpiod":
        return GpiodDigitalIn(chip, line, active_low=active_low, bias=bias, debounce_ms=debounce_ms)
    assert_never(backend)


def open_digital_out(
    backend: GpioBackend, chip: str, line: int, *, value: bool = False, active_low: bool = False
) -> DigitalOut:
    """A host GPIO output, driven to `value` from the start."""
    if backend == "simulated":
        return FakeDigitalOut(f"simulated GPIO {chip} line {line}", value=value)
    if backend == "gpiod":
        return GpiodDigitalOut(chip, line, value=value, active_low=active_low)
    assert_never(backend)
