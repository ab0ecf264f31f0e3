"""McuDevices over a real pty to an in-loop MCU: commands, events, both e-stop layers, a lost link."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from firmware_bridge.client import McuClient
from hardware.devices import CardTap, CardUid, CompartmentState, LightPattern
from hardware.errors import DeviceUnavailableError, EStopPressedError
from hardware.factory import open_devices
from hardware.mcu import McuDevices
from tests.support.pty_mcu import PtyMcu, pty_mcu

UID = bytes.fromhex("04c0ffee5a11ad")


@pytest.fixture
async def mcu() -> AsyncIterator[PtyMcu]:
    async with pty_mcu() as mcu:
        yield mcu


@pytest.fixture
async def devices(mcu: PtyMcu) -> AsyncIterator[McuDevices]:
    async with McuDevices(McuClient(mcu.path)) as devices:
        async with asyncio.timeout(5):
            await devices.wait_linked()
        yield devices


async def test_each_command_reaches_the_board_with_its_fields(mcu: PtyMcu) -> None:
    devices = await open_devices("mcu", mcu.path, 115200)
    try:
        assert devices.mcu is not None
        async with asyncio.timeout(5):
            await devices.mcu.wait_linked()
        await devices.gate.pulse(1500)
        await devices.lights.show(LightPattern.BLINK, 255, 128, 0, ms=400)
        await devices.buzzer.beep(440, ms=100)
        await devices.compartments.unlock(7, ms=3000)
        await devices.drive.move(-1500, 1500, deadline_ms=500)
        await devices.drive.stop()
    finally:
        await devices.close()
    assert mcu.board.executed == [
        ("GATE_PULSE", {"ms": 1500}),
        ("LIGHTS", {"pattern": 2, "red": 255, "green": 128, "blue": 0, "ms": 400}),
        ("BUZZER", {"freq_hz": 440, "ms": 100}),
        ("COMPARTMENT_UNLOCK", {"index": 7, "ms": 3000}),
        ("DRIVE", {"left_mm_s": -1500, "right_mm_s": 1500, "deadline_ms": 500}),
        ("STOP", {}),
    ]


async def test_bad_arguments_never_leave_the_host(mcu: PtyMcu, devices: McuDevices) -> None:
    with pytest.raises(ValueError, match=r"drive\.move: deadline_ms=501 is outside 1\.\.500"):
        await devices.drive.move(0, 0, deadline_ms=501)
    assert mcu.board.executed == []


async def test_a_card_tap_arrives_as_a_tap_and_its_uid_is_never_logged(
    mcu: PtyMcu, devices: McuDevices, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mcu.board.pending_events.append(("CARD_READ", {"reader": 1, "uid": UID}))
    async with asyncio.timeout(5):
        tap = await anext(devices.card_reader.taps())
    assert tap == CardTap(1, CardUid(UID))
    assert "card tap reader=1" in caplog.messages
    for record in caplog.records:
        assert UID.hex() not in record.getMessage().lower()
        assert "c0\\xffe" not in record.getMessage().lower()


async def test_a_compartment_event_updates_its_state(mcu: PtyMcu, devices: McuDevices) -> None:
    mcu.board.pending_events.append(("COMPARTMENT_STATE", {"index": 3, "state": int(CompartmentState.OPEN)}))
    mcu.board.pending_events.append(("CARD_READ", {"reader": 0, "uid": UID}))
    async with asyncio.timeout(5):
        await anext(devices.card_reader.taps())  # events are applied in order: the compartment's came first
    assert devices.compartments.state(3) is CompartmentState.OPEN
    assert devices.compartments.state(2) is CompartmentState.LOCKED


async def test_after_an_estop_event_actuators_are_refused_here_and_stop_still_goes(
    mcu: PtyMcu, devices: McuDevices
) -> None:
    changes = devices.estop.changes()
    mcu.board.estop = True
    mcu.board.pending_events.append(("ESTOP", {"pressed": 1}))
    async with asyncio.timeout(5):
        assert await anext(changes) is True
    with pytest.raises(EStopPressedError, match=r"^gate\.pulse refused: the e-stop is pressed") as caught:
        await devices.gate.pulse(100)
    assert not caught.value.by_mcu
    with pytest.raises(EStopPressedError, match=r"^drive\.move refused"):
        await devices.drive.move(10, 10, deadline_ms=100)
    await devices.drive.stop()
    assert mcu.board.executed == [("STOP", {})]  # nothing refused locally reached the MCU

    mcu.board.estop = False
    mcu.board.pending_events.append(("ESTOP", {"pressed": 0}))
    async with asyncio.timeout(5):
        assert await anext(changes) is False
    await devices.gate.pulse(100)
    assert mcu.board.executed[-1] == ("GATE_PULSE", {"ms": 100})


async def test_the_mcus_refusal_is_an_estop_error_and_holds_here(mcu: PtyMcu, devices: McuDevices) -> None:
    mcu.board.estop = True  # the host has not heard yet: no event, no status since
    with pytest.raises(
        EStopPressedError, match=r"^buzzer\.beep refused by the MCU: the e-stop is pressed"
    ) as caught:
        await devices.buzzer.beep(440, ms=100)
    assert caught.value.by_mcu
    assert devices.estop.pressed
    with pytest.raises(EStopPressedError, match=r"^buzzer\.beep refused: the e-stop"):
        await devices.buzzer.beep(440, ms=100)


async def test_the_estop_converges_through_the_status_without_any_event(
    mcu: PtyMcu, devices: McuDevices
) -> None:
    changes = devices.estop.changes()
    mcu.board.estop = True
    async with asyncio.timeout(5):
        assert await anext(changes) is True
    mcu.board.estop = False
    async with asyncio.timeout(5):
        assert await anext(changes) is False


async def test_commands_before_the_link_are_unavailable(mcu: PtyMcu) -> None:
    async with McuDevices(McuClient(mcu.path)) as devices:
        with pytest.raises(DeviceUnavailableError, match=rf"^gate\.pulse: no link to the MCU on {mcu.path}"):
            await devices.gate.pulse(100)
    assert mcu.board.executed == []


async def test_a_dead_link_makes_the_devices_unavailable(mcu: PtyMcu, devices: McuDevices) -> None:
    mcu.deaf = True
    with pytest.raises(
        DeviceUnavailableError, match=r"^compartments\.unlock: .*may or may not have run"
    ) as caught:
        await devices.compartments.unlock(0, ms=1000)
    assert caught.value.__cause__ is not None
    with pytest.raises(DeviceUnavailableError, match=r"^lights\.show: no link to the MCU"):
        await devices.lights.show(LightPattern.SOLID, 0, 0, 0, ms=100)
    mcu.deaf = False
    async with asyncio.timeout(5):
        await devices.wait_linked()
    await devices.gate.pulse(100)
    assert mcu.board.executed[-1] == ("GATE_PULSE", {"ms": 100})
