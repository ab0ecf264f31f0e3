"""Host GPIO through the fakes (edges, waiters, history on a manual clock), and gpiod failing to open a chip.

This machine has no GPIO chip (shared/notes/serial-facts.md): the edge logic the gpiod input runs is
`EdgeWaiters`, which the fake shares, so it is tested here.
"""

from __future__ import annotations

import asyncio

import pytest

from hardware.clock import ManualClock
from hardware.devices import DigitalIn, DigitalOut, EdgeEvent
from hardware.errors import DeviceUnavailableError
from hardware.factory import open_digital_in, open_digital_out
from hardware.gpio import FakeDigitalIn, FakeDigitalOut, GpiodDigitalIn, GpiodDigitalOut


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(50.0)


async def test_a_change_is_an_edge_kept_in_the_history(clock: ManualClock) -> None:
    line = FakeDigitalIn("door", clock=clock)
    line.inject(True)
    clock.advance(0.25)
    line.inject(True)  # no change, no edge
    line.inject(False)
    assert line.history == [EdgeEvent("rising", 50.0), EdgeEvent("falling", 50.25)]
    assert line.value is False


async def test_wait_edge_wakes_on_the_next_matching_edge_only(clock: ManualClock) -> None:
    line = FakeDigitalIn("button", clock=clock)
    falling = asyncio.create_task(line.wait_edge("falling"))
    rising = asyncio.create_task(line.wait_edge("rising"))
    either = asyncio.create_task(line.wait_edge())
    await asyncio.sleep(0)
    line.inject(True)
    clock.advance(0.1)
    line.inject(False)
    async with asyncio.timeout(1):
        results = await asyncio.gather(rising, falling, either)
    assert list(results) == [EdgeEvent("rising", 50.0), EdgeEvent("falling", 50.1), EdgeEvent("rising", 50.0)]


async def test_an_edge_before_the_wait_does_not_count(clock: ManualClock) -> None:
    line = FakeDigitalIn("button", clock=clock)
    line.inject(True)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await line.wait_edge("rising")


async def test_a_timed_out_wait_leaves_no_waiter_behind(clock: ManualClock) -> None:
    line = FakeDigitalIn("button", clock=clock)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await line.wait_edge("rising")
    line.inject(True)  # would raise InvalidStateError on a cancelled future still listed
    waiter = asyncio.create_task(line.wait_edge("falling"))
    await asyncio.sleep(0)
    line.inject(False)
    async with asyncio.timeout(1):
        assert (await waiter).edge == "falling"


async def test_a_wrong_edge_name_is_refused() -> None:
    line = FakeDigitalIn("button")
    with pytest.raises(ValueError, match="button: edge must be one of rising, falling, both, got 'up'"):
        await line.wait_edge("up")  # type: ignore[arg-type]


async def test_closing_an_input_fails_its_waiters_and_later_waits() -> None:
    line = FakeDigitalIn("door")
    waiter = asyncio.create_task(line.wait_edge())
    await asyncio.sleep(0)
    line.close()
    with pytest.raises(DeviceUnavailableError, match="door was closed while waiting for an edge"):
        await waiter
    with pytest.raises(DeviceUnavailableError, match="door is closed"):
        await line.wait_edge()


async def test_an_output_keeps_each_set_with_its_time(clock: ManualClock) -> None:
    relay = FakeDigitalOut("relay", clock=clock)
    await relay.set(True)
    clock.advance(0.2)
    await relay.set(False)
    assert relay.history == [(50.0, True), (50.2, False)]
    assert relay.value is False
    relay.close()
    with pytest.raises(DeviceUnavailableError, match="relay is closed"):
        await relay.set(True)


async def test_the_factory_gives_fakes_for_the_simulated_backend() -> None:
    line: DigitalIn = open_digital_in("simulated", "/dev/gpiochip0", 17)
    out: DigitalOut = open_digital_out("simulated", "/dev/gpiochip0", 27, value=True)
    assert isinstance(line, FakeDigitalIn)
    assert isinstance(out, FakeDigitalOut)
    assert (line.value, out.value) == (False, True)
    assert line.name == "simulated GPIO /dev/gpiochip0 line 17"
    line.close()
    out.close()


async def test_gpiod_names_the_chip_and_line_it_cannot_open() -> None:
    missing = "/dev/gpiochip-does-not-exist"
    with pytest.raises(DeviceUnavailableError, match=f"GPIO {missing} line 17: .*No such file"):
        GpiodDigitalIn(missing, 17)
    with pytest.raises(DeviceUnavailableError, match=f"GPIO {missing} line 4: .*No such file"):
        GpiodDigitalOut(missing, 4)
    with pytest.raises(DeviceUnavailableError, match="GPIO /dev/null line 4"):
        open_digital_out("gpiod", "/dev/null", 4)
