"""The behaviour driver on the simulated devices: a valid verdict pulses the gate once and lights green, a
refused one lights red and buzzes, the e-stop halts it and it says so, and a device's refusal is reported as a
fault, never raised."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from hardware.devices import GateState, LightPattern
from hardware.errors import DeviceUnavailableError
from hardware.factory import Devices, open_devices
from hardware.sim import SimDevices
from models.tickets import Verdict
from robot_agent.behaviour.driver import BehaviourDriver
from robot_agent.behaviour.events import CodeShown, Seat
from robot_agent.behaviour.machine import Behaviour, Settings, State
from robot_agent.behaviour.speaker import SimSpeaker
from robot_agent.live import LiveEvent, LiveEvents
from robot_agent.tickets import CheckMethod, CheckOutcome

TICKET = uuid.UUID(int=42)
SEAT = Seat(7, 33, "LED", hotels=("Astoria",), attractions=("Hermitage", "Kunstkamera"))
SETTINGS = Settings(language="en", verdict_s=6, gate_pulse_ms=2500)


def outcome(verdict: Verdict = Verdict.VALID) -> CheckOutcome:
    at = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    return CheckOutcome(verdict, "reason for engineers", TICKET, CheckMethod.CAMERA, at, 742, 1)


class Robot:
    """A driver on simulated devices, its speaker and its live events."""

    def __init__(self, devices: Devices, *, settings: Settings = SETTINGS, with_estop: bool = True) -> None:
        assert devices.simulator is not None
        self.sim: SimDevices = devices.simulator
        self.live = LiveEvents()
        self.speaker = SimSpeaker(self.live)
        self.seats: list[uuid.UUID] = []
        self.driver = BehaviourDriver(
            Behaviour(settings),
            gate=devices.gate,
            lights=devices.lights,
            buzzer=devices.buzzer,
            speaker=self.speaker,
            estop=devices.estop if with_estop else None,
            seat_of=self.seat_of,
            live=self.live,
        )

    def seat_of(self, ticket_id: uuid.UUID) -> Seat | None:
        self.seats.append(ticket_id)
        return SEAT

    def commands(self, call: str) -> list[dict[str, int]]:
        return [values for _, name, values in self.sim.commands if name == call]

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in self.live.recent() if e.kind == kind]


@pytest.fixture
async def devices() -> AsyncIterator[Devices]:
    opened = await open_devices("simulated", None, 115200)
    yield opened
    await opened.close()


@pytest.fixture
def robot(devices: Devices) -> Robot:
    return Robot(devices)


async def test_a_valid_ticket_pulses_the_gate_once_lights_green_and_tells_the_seat(robot: Robot) -> None:
    robot.driver.on_outcome(outcome(), None)
    await robot.driver.handle(await robot.driver._queue.get())
    assert robot.commands("gate.pulse") == [{"ms": 2500}]
    assert robot.sim.gate.state is GateState.OPEN
    assert robot.sim.lights.showing == (LightPattern.SOLID, 0, 255, 0)
    assert robot.commands("buzzer.beep") == []
    assert robot.seats == [TICKET]
    assert [u.text for u in robot.speaker.said] == [
        "Welcome aboard! Wagon 7, place 33.",
        "Hotels where you are going: Astoria.",
        "Worth seeing there: Hermitage, Kunstkamera.",
    ]
    assert [e["key"] for e in robot.kinds("utterance")] == ["valid", "hotels", "attractions"]
    assert robot.kinds("behaviour") == [{"state": "valid", "previous": "idle", "on": "Checked"}]


async def test_a_refused_ticket_lights_red_and_buzzes_and_opens_nothing(robot: Robot) -> None:
    robot.driver.on_outcome(outcome(Verdict.ALREADY_USED))
    await robot.driver.handle(await robot.driver._queue.get())
    assert robot.commands("gate.pulse") == []
    assert robot.sim.lights.showing == (LightPattern.BLINK, 255, 0, 0)
    assert robot.sim.buzzer.sounding == 440
    assert robot.seats == []  # no seat looked up for a refusal
    assert robot.speaker.keys == ["refused.already_used"]
    assert robot.speaker.said[0].text == "This ticket has already been used."


async def run_until(robot: Robot, kind: str, match: dict[str, Any], after: int = 0) -> LiveEvent:
    """The first live event of `kind` whose data holds `match`, published after seq `after`."""
    async with robot.live.subscribe([kind], after=after) as events, asyncio.timeout(10):
        async for event in events:
            if match.items() <= event.data.items():
                return event
    raise AssertionError("unreachable")


async def test_the_estop_halts_the_running_driver_which_says_so_and_opens_nothing(robot: Robot) -> None:
    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(robot.driver.run())
        await asyncio.sleep(0)  # the driver follows the e-stop from here on
        robot.sim.press_estop()
        await run_until(robot, "behaviour", {"state": "halted"})
        robot.driver.on_outcome(outcome())  # a check already under way when the e-stop was pressed
        said = await run_until(robot, "utterance", {"key": "estop_halted"}, robot.live.recent()[-1].seq)
        assert robot.commands("gate.pulse") == []
        robot.sim.release_estop()
        await run_until(robot, "behaviour", {"state": "idle"}, said.seq)
        await run_until(robot, "utterance", {"key": "estop_released"}, said.seq)
        running.cancel()
    assert robot.speaker.keys == ["estop_halted", "estop_halted", "estop_released"]
    assert robot.kinds("fault") == []  # halted, the machine asked nothing of the devices


async def test_an_estop_pressed_before_the_driver_starts_halts_it_at_once(robot: Robot) -> None:
    robot.sim.press_estop()
    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(robot.driver.run())
        await run_until(robot, "utterance", {"key": "estop_halted"})
        running.cancel()
    assert robot.speaker.keys == ["estop_halted"]
    assert robot.driver.behaviour.state is State.HALTED


async def test_a_device_refusing_is_reported_as_a_fault_and_the_rest_still_happens(devices: Devices) -> None:
    # The e-stop is pressed but the machine has not heard of it (no e-stop device given): the race the
    # driver must survive.
    robot = Robot(devices, with_estop=False)
    robot.sim.press_estop()
    robot.driver.on_outcome(outcome())
    actions = await robot.driver.handle(await robot.driver._queue.get())
    assert len(actions) == 5
    assert [(f["action"], f["error"].split(":")[0]) for f in robot.kinds("fault")] == [
        ("lights.show", "EStopPressedError"),
        ("gate.pulse", "EStopPressedError"),
    ]
    assert robot.driver.faults == 2
    assert robot.speaker.keys == ["valid", "hotels", "attractions"]  # the words still go out
    assert robot.driver.behaviour.state is State.VALID


class UnlinkedGate:
    state = GateState.CLOSED

    async def pulse(self, ms: int) -> None:
        raise DeviceUnavailableError("no link to the MCU")


async def test_an_unreachable_device_is_a_fault_not_an_exception(devices: Devices) -> None:
    robot = Robot(devices)
    robot.driver.gate = UnlinkedGate()
    robot.driver.on_outcome(outcome())
    await robot.driver.handle(await robot.driver._queue.get())
    assert robot.kinds("fault") == [
        {"part": "behaviour", "action": "gate.pulse", "error": "DeviceUnavailableError: no link to the MCU"}
    ]
    assert robot.sim.lights.showing == (LightPattern.SOLID, 0, 255, 0)


async def test_a_seat_that_cannot_be_read_still_lets_the_passenger_in(robot: Robot) -> None:
    def broken(ticket_id: uuid.UUID) -> Seat | None:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    robot.driver.seat_of = broken
    robot.driver.on_outcome(outcome())
    await robot.driver.handle(await robot.driver._queue.get())
    assert robot.commands("gate.pulse") == [{"ms": 2500}]
    assert robot.speaker.keys == ["valid_plain"]
    assert [f["action"] for f in robot.kinds("fault")] == ["seat lookup"]


async def test_the_running_driver_times_out_by_itself_and_takes_events_from_other_threads(
    devices: Devices,
) -> None:
    robot = Robot(devices, settings=Settings(language="en", engaged_timeout_s=0.05))
    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(robot.driver.run())
        await asyncio.sleep(0)
        await asyncio.to_thread(robot.driver.face_seen, None)  # a sighting reported from a worker thread
        await run_until(robot, "utterance", {"key": "timeout"})
        running.cancel()
    assert robot.speaker.keys == ["greeting", "timeout"]
    assert [e["state"] for e in robot.kinds("behaviour")] == ["engaged", "idle"]
    assert robot.driver.snapshot() == {"state": "idle", "language": "en", "waiting": 0, "faults": 0}


async def test_a_code_shown_is_stamped_and_waited_for(robot: Robot) -> None:
    robot.driver.code_shown()
    event = await robot.driver._queue.get()
    assert isinstance(event, CodeShown)
    await robot.driver.handle(event)
    assert robot.driver.behaviour.state is State.IDENTIFIED
    assert robot.sim.lights.showing == (LightPattern.PULSE, 0, 96, 255)


class StuckGate:
    """A gate whose command never gets its reply (a link gone quiet): `pulse` waits until cancelled."""

    state = GateState.CLOSED

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.cancelled = False

    async def pulse(self, ms: int) -> None:
        self.waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_the_estop_does_not_wait_for_a_command_stuck_on_a_slow_link(devices: Devices) -> None:
    robot = Robot(devices)
    gate = robot.driver.gate = StuckGate()
    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(robot.driver.run())
        robot.driver.on_outcome(outcome())
        await gate.waiting.wait()
        robot.sim.press_estop()
        await run_until(robot, "utterance", {"key": "estop_halted"})
        running.cancel()
    assert gate.cancelled
    assert robot.speaker.keys == ["valid", "hotels", "attractions", "estop_halted"]


async def test_a_driver_restarted_while_halted_hears_of_a_release_it_missed(robot: Robot) -> None:
    robot.sim.press_estop()
    for _ in range(2):  # run, stopped (the supervisor restarting the part), run again
        async with asyncio.TaskGroup() as tasks:
            running = tasks.create_task(robot.driver.run())
            await run_until(robot, "behaviour", {"state": "halted" if robot.sim.estop.pressed else "idle"})
            running.cancel()
        robot.sim.release_estop()  # while the driver is not running
    assert robot.driver.behaviour.state is State.IDLE
    assert robot.speaker.keys == ["estop_halted", "estop_released"]
