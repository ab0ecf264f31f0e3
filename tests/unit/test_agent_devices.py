"""The agent's watchers of the simulated devices: e-stop into the status (and so a live event), card taps as
live events without the UID and to every `CardTaps` subscriber, the safe state on the way out."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hardware.factory import open_devices
from robot_agent.devices import CardTaps, DeviceWatch, firmware_text
from robot_agent.live import LiveEvents
from robot_agent.status import RobotStatus

UID = bytes.fromhex("04a1b2c3d4e5f6")


async def watched() -> tuple[DeviceWatch, RobotStatus, LiveEvents, CardTaps]:
    devices = await open_devices("simulated", None, 115200)
    status, live, taps = RobotStatus(uuid.uuid4()), LiveEvents(), CardTaps()

    def tell(kind: str, data: dict[str, Any]) -> None:  # as the agent does
        live.publish(kind, data)

    status.listen(tell)
    return DeviceWatch(devices, status, live, taps), status, live, taps


async def test_estop_changes_reach_the_status_and_the_live_events() -> None:
    watch, status, live, _taps = await watched()
    sim = watch.devices.simulator
    assert sim is not None
    async with asyncio.TaskGroup() as group:
        estop = group.create_task(watch.estop())
        link = group.create_task(watch.mcu_link())
        await asyncio.sleep(0)
        sim.press_estop()
        async with live.subscribe(["estop"], after=0) as events:
            async for event in events:
                if event.data["pressed"]:
                    break
        assert status.estop_pressed
        sim.release_estop()
        async with live.subscribe(["estop"]) as events:
            async for event in events:
                assert event.data["pressed"] is False
                break
        estop.cancel()
        link.cancel()
    assert not status.estop_pressed
    assert status.mcu_linked  # the simulation is always linked
    assert (await status.snapshot())["mcu"]["firmware"] == "simulated"


async def test_a_card_tap_is_a_live_event_without_its_uid_and_reaches_every_subscriber() -> None:
    watch, _status, live, taps = await watched()
    sim = watch.devices.simulator
    assert sim is not None
    first, second = taps.subscribe(), taps.subscribe()
    reader = asyncio.create_task(watch.card_reader())
    sim.tap_card(1, UID)
    got = [await anext(aiter(first)), await anext(aiter(second))]
    assert [(tap.reader, tap.uid.value) for tap in got] == [(1, UID), (1, UID)]
    second.close()
    sim.tap_card(0, UID)
    assert (await anext(aiter(first))).reader == 0
    reader.cancel()
    events = [e for e in live.recent() if e.kind == "card_tap"]
    assert [e.data for e in events] == [{"reader": 1}, {"reader": 0}]
    assert UID.hex() not in repr(live.recent())
    assert taps.taps == 2


async def test_the_safe_state_is_lights_off_then_stop_even_under_the_estop() -> None:
    watch, *_ = await watched()
    sim = watch.devices.simulator
    assert sim is not None
    await watch.safe_state()
    assert [call for _at, call, _values in sim.commands] == ["lights.show", "drive.stop"]
    sim.press_estop()
    await watch.safe_state()  # lights refused (logged), STOP goes through
    assert [call for _at, call, _values in sim.commands][2:] == ["drive.stop"]


def test_firmware_versions_read_as_major_minor_patch() -> None:
    assert firmware_text(0x010203) == "1.2.3"
    assert firmware_text(0x0A0000) == "10.0.0"
