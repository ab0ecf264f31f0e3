"""The whole device stack against the MCU simulator process: `hardware` devices opened as robot.toml's
`backend = "mcu"` would, over McuClient, a real pty, and the simulator's protocol and board. Every command
reaches the board with its values, and every event the board can raise comes back to the devices."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from firmware_bridge.schema import CompartmentState, GateState, LightPattern
from hardware.errors import EStopPressedError
from hardware.factory import open_devices
from tests.support.simulator import Simulator
from tests.support.tasks import eventually

StartSimulator = Callable[..., Simulator]


def executed(simulator: Simulator) -> list[tuple[str, dict[str, Any]]]:
    return [(name, fields) for name, fields in simulator.state()["executed"]]


async def test_every_command_and_event_through_the_simulator(start_simulator: StartSimulator) -> None:
    simulator = start_simulator()
    devices = await open_devices("mcu", simulator.pty_path, 115_200)
    mcu = devices.mcu
    assert mcu is not None
    try:
        async with asyncio.timeout(10):
            await mcu.wait_linked()
        await devices.gate.pulse(2_000)
        await eventually(lambda: devices.gate.state is GateState.OPEN, "the gate open")
        await devices.lights.show(LightPattern.BLINK, 255, 128, 0, 1_500)
        await devices.buzzer.beep(880, 300)
        await devices.compartments.unlock(5, 2_000)
        await eventually(
            lambda: devices.compartments.state(5) is CompartmentState.UNLOCKED, "compartment 5 open"
        )
        await devices.drive.move(-250, 400, 300)
        await devices.drive.stop()
        assert executed(simulator) == [
            ("GATE_PULSE", {"ms": 2000}),
            ("LIGHTS", {"pattern": 2, "red": 255, "green": 128, "blue": 0, "ms": 1500}),
            ("BUZZER", {"freq_hz": 880, "ms": 300}),
            ("COMPARTMENT_UNLOCK", {"index": 5, "ms": 2000}),
            ("DRIVE", {"left_mm_s": -250, "right_mm_s": 400, "deadline_ms": 300}),
            ("STOP", {}),
        ]
        # STOP puts everything safe: the gate shuts and the compartment locks, and the events say so.
        await eventually(lambda: devices.gate.state is GateState.CLOSED, "the gate closed by STOP")
        await eventually(
            lambda: devices.compartments.state(5) is CompartmentState.LOCKED,
            "compartment 5 locked after STOP",
        )
        taps = devices.card_reader.taps()
        simulator.control(op="card", reader=1, uid="04a1b2c3d4e5f6")
        async with asyncio.timeout(5):
            tap = await anext(taps)
        assert (tap.reader, tap.uid.value) == (1, bytes.fromhex("04a1b2c3d4e5f6"))
        assert "04a1b2c3" not in repr(tap)
        changes = devices.estop.changes()
        simulator.control(op="estop", pressed=True)
        async with asyncio.timeout(5):
            assert await anext(changes) is True
        with pytest.raises(EStopPressedError, match="e-stop is pressed"):
            await devices.gate.pulse(100)
        simulator.control(op="estop", pressed=False)
        async with asyncio.timeout(5):
            assert await anext(changes) is False
        await devices.gate.pulse(100)
        simulator.control(op="fault", code=3, active=True)
        await eventually(
            lambda: int((mcu.client.status or {}).get("faults", 0)) & 1 << 3 != 0, "fault 3 in STATUS"
        )
    finally:
        await devices.close()
    assert [name for name, _ in executed(simulator)][-1] == "GATE_PULSE"
