"""The simulated devices: what each does and for how long, bounds, the e-stop, card UIDs kept out of logs."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

import pytest

from hardware.clock import ManualClock
from hardware.devices import CardTap, CardUid, CompartmentState, GateState, LightPattern
from hardware.errors import EStopPressedError
from hardware.factory import open_devices
from hardware.sim import SimDevices

UID = bytes.fromhex("04a1b2c3d4e5f6")

Call = Callable[[SimDevices], Awaitable[None]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(100.0)


@pytest.fixture
def sim(clock: ManualClock) -> SimDevices:
    return SimDevices(clock)


async def test_the_gate_opens_for_its_pulse_then_closes(sim: SimDevices, clock: ManualClock) -> None:
    seen = [sim.gate.state]
    await sim.gate.pulse(1500)
    seen.append(sim.gate.state)
    clock.advance(1.499)
    seen.append(sim.gate.state)
    clock.advance(0.002)
    seen.append(sim.gate.state)
    assert seen == [GateState.CLOSED, GateState.OPEN, GateState.OPEN, GateState.CLOSED]
    assert sim.commands == [(100.0, "gate.pulse", {"ms": 1500})]


async def test_lights_and_buzzer_run_for_their_time(sim: SimDevices, clock: ManualClock) -> None:
    await sim.lights.show(LightPattern.BLINK, 255, 0, 10, ms=200)
    await sim.buzzer.beep(2000, ms=100)
    assert (sim.lights.showing, sim.buzzer.sounding) == ((LightPattern.BLINK, 255, 0, 10), 2000)
    clock.advance(0.150)
    assert (sim.lights.showing, sim.buzzer.sounding) == ((LightPattern.BLINK, 255, 0, 10), 0)
    clock.advance(0.100)
    assert sim.lights.showing == (LightPattern.OFF, 0, 0, 0)


async def test_a_compartment_unlocks_opens_and_locks_once_closed(sim: SimDevices, clock: ManualClock) -> None:
    await sim.compartments.unlock(3, ms=5000)
    assert [sim.compartments.state(i) for i in (2, 3)] == [CompartmentState.LOCKED, CompartmentState.UNLOCKED]
    sim.open_door(3)
    clock.advance(10)
    assert sim.compartments.state(3) is CompartmentState.OPEN  # still open: it locks only when closed
    sim.close_door(3)
    assert sim.compartments.state(3) is CompartmentState.LOCKED
    with pytest.raises(ValueError, match="compartment 3 is locked: its door cannot open"):
        sim.open_door(3)
    with pytest.raises(ValueError, match=r"compartment index 8 is outside 0\.\.7"):
        sim.compartments.state(8)


async def test_the_wheels_stop_at_the_deadline_unless_driven_again(
    sim: SimDevices, clock: ManualClock
) -> None:
    await sim.drive.move(300, -300, deadline_ms=200)
    clock.advance(0.150)
    assert sim.drive.speeds == (300, -300)
    await sim.drive.move(500, 500, deadline_ms=200)
    clock.advance(0.150)
    assert sim.drive.speeds == (500, 500)
    clock.advance(0.100)
    assert sim.drive.speeds == (0, 0)


async def test_stop_puts_every_actuator_in_its_safe_state(sim: SimDevices) -> None:
    await sim.gate.pulse(5000)
    await sim.lights.show(LightPattern.SOLID, 1, 2, 3, ms=5000)
    await sim.buzzer.beep(440, ms=5000)
    await sim.compartments.unlock(0, ms=5000)
    await sim.drive.move(100, 100, deadline_ms=500)
    await sim.drive.stop()
    assert sim.gate.state is GateState.CLOSED
    assert sim.lights.showing[0] is LightPattern.OFF
    assert sim.buzzer.sounding == 0
    assert sim.compartments.state(0) is CompartmentState.LOCKED
    assert sim.drive.speeds == (0, 0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.gate.pulse(0), "gate.pulse: ms=0 is outside 1..10000"),
        (lambda s: s.gate.pulse(10_001), "gate.pulse: ms=10001 is outside 1..10000"),
        (lambda s: s.lights.show(4, 0, 0, 0, 100), "lights.show: pattern=4 is outside 0..3"),
        (
            lambda s: s.lights.show(LightPattern.SOLID, 256, 0, 0, 100),
            "lights.show: red=256 is outside 0..255",
        ),
        (
            lambda s: s.lights.show(LightPattern.SOLID, 0, 0, 0, 60_001),
            "lights.show: ms=60001 is outside 1..60000",
        ),
        (lambda s: s.buzzer.beep(99, 100), "buzzer.beep: freq_hz=99 is outside 100..8000"),
        (lambda s: s.buzzer.beep(440, 5001), "buzzer.beep: ms=5001 is outside 1..5000"),
        (lambda s: s.compartments.unlock(8, 100), "compartments.unlock: index=8 is outside 0..7"),
        (lambda s: s.compartments.unlock(-1, 100), "compartments.unlock: index=-1 is outside 0..7"),
        (lambda s: s.compartments.unlock(0, 30_001), "compartments.unlock: ms=30001 is outside 1..30000"),
        (lambda s: s.drive.move(1501, 0, 100), "drive.move: left_mm_s=1501 is outside -1500..1500"),
        (lambda s: s.drive.move(0, -1501, 100), "drive.move: right_mm_s=-1501 is outside -1500..1500"),
        (lambda s: s.drive.move(0, 0, 501), "drive.move: deadline_ms=501 is outside 1..500"),
        (lambda s: s.drive.move(0, 0, 0), "drive.move: deadline_ms=0 is outside 1..500"),
    ],
)
async def test_arguments_out_of_bounds_are_refused_by_name(sim: SimDevices, call: Call, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        await call(sim)
    assert sim.commands == []


async def test_an_argument_of_the_wrong_type_is_refused(sim: SimDevices) -> None:
    with pytest.raises(TypeError, match=r"gate\.pulse: ms must be an integer, got 1\.5"):
        await sim.gate.pulse(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"buzzer\.beep: freq_hz must be an integer, got True"):
        await sim.buzzer.beep(True, 100)


ACTUATORS: list[tuple[str, Call]] = [
    ("gate.pulse", lambda s: s.gate.pulse(100)),
    ("lights.show", lambda s: s.lights.show(LightPattern.SOLID, 0, 255, 0, 100)),
    ("buzzer.beep", lambda s: s.buzzer.beep(440, 100)),
    ("compartments.unlock", lambda s: s.compartments.unlock(1, 100)),
    ("drive.move", lambda s: s.drive.move(100, 100, 100)),
]


async def test_while_the_estop_is_pressed_every_actuator_is_refused_but_stop(sim: SimDevices) -> None:
    await sim.gate.pulse(5000)
    sim.press_estop()
    assert sim.estop.pressed
    assert sim.gate.state is GateState.CLOSED  # the press itself is a safe state
    for name, call in ACTUATORS:
        with pytest.raises(EStopPressedError, match=f"^{name} refused: the e-stop is pressed") as caught:
            await call(sim)
        assert caught.value.command == name
    await sim.drive.stop()
    assert [c[1] for c in sim.commands] == ["gate.pulse", "drive.stop"]
    sim.release_estop()
    for _, call in ACTUATORS:
        await call(sim)
    assert len(sim.commands) == 2 + len(ACTUATORS)


async def test_estop_changes_are_heard_by_every_listener_once_each(sim: SimDevices) -> None:
    first, second = sim.estop.changes(), sim.estop.changes()
    sim.press_estop()
    sim.press_estop()  # no change
    sim.release_estop()
    async with asyncio.timeout(1):
        assert [await anext(first), await anext(first)] == [True, False]
        assert [await anext(second), await anext(second)] == [True, False]


async def test_a_tap_delivers_the_uid_but_never_shows_it(sim: SimDevices) -> None:
    sim.tap_card(1, UID)
    async with asyncio.timeout(1):
        tap = await anext(sim.card_reader.taps())
    assert tap == CardTap(1, CardUid(UID))
    assert tap.uid.value == UID
    for text in (repr(tap), str(tap), repr(tap.uid), str(tap.uid), f"{tap.uid}", f"{tap}"):
        assert UID.hex() not in text.lower()
        assert repr(UID) not in text
    assert repr(tap.uid) == "CardUid(<7 bytes>)"


def test_a_uid_of_the_wrong_size_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match=r"^a card UID is 4\.\.10 bytes, got 3$"):
        CardUid(b"\x04\xa1\xb2")
    with pytest.raises(ValueError, match="got 11"):
        CardUid(bytes(range(1, 12)))


async def test_taps_wait_for_the_agent_and_the_oldest_go_when_it_falls_behind(sim: SimDevices) -> None:
    for n in range(20):
        sim.tap_card(0, bytes([4, 0, 0, n]))
    taps = sim.card_reader.taps()
    async with asyncio.timeout(1):
        firsts = [(await anext(taps)).uid.value[-1] for _ in range(16)]
    assert firsts == list(range(4, 20))


async def test_a_card_tap_is_never_in_the_log(sim: SimDevices, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    taps = sim.card_reader.taps()
    sim.press_estop()
    for n in range(20):  # past the buffer: the overflow warning too
        sim.tap_card(2, UID[:-1] + bytes([n]))
    async with asyncio.timeout(1):
        tap = await anext(taps)
    logging.getLogger("test").debug("tap %s %r", tap, tap)
    assert caplog.records, "the test would pass with logging off"
    for record in caplog.records:
        text = record.getMessage().lower()
        assert UID[:-1].hex() not in text
        assert repr(UID[:-1])[2:-1] not in text


async def test_the_factory_opens_the_simulation() -> None:
    devices = await open_devices("simulated", None, 115200)
    try:
        assert devices.simulator is not None
        assert devices.mcu is None
        devices.simulator.tap_card(0, UID)
        async with asyncio.timeout(1):
            assert (await anext(devices.card_reader.taps())).uid.value == UID
        await devices.gate.pulse(10)
        assert devices.gate.state is GateState.OPEN
    finally:
        await devices.close()


async def test_the_factory_refuses_the_mcu_without_a_port() -> None:
    with pytest.raises(ValueError, match='"mcu" hardware backend needs serial_url'):
        await open_devices("mcu", None, 115200)
