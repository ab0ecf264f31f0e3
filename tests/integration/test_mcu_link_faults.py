"""The host's McuClient against the simulator process over real ptys, with faults caused for real: a noise
proxy flipping and dropping bytes, an MCU reset mid-stream, a host that stops sending, the e-stop.

Each test counts what arrived: commands executed (the simulator's own count, per command), events seen."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from firmware_bridge.client import McuClient
from firmware_bridge.errors import IncompatibleFirmwareError, LinkLostError, NotLinkedError
from firmware_bridge.host import Event
from firmware_bridge.noise_proxy import Noise, NoiseProxy
from firmware_bridge.schema import GateState, Output, ReplyResult
from tests.support.simulator import Simulator

StartSimulator = Callable[..., Simulator]
NOISE = Noise(flip=0.01, drop=0.005)


async def collect(client: McuClient, into: list[Event]) -> None:
    async for event in client.events():
        into.append(event)


async def test_a_thousand_commands_and_card_taps_through_a_noisy_line(
    start_simulator: StartSimulator,
) -> None:
    """At 1% flipped and 0.5% dropped bytes each way: every command completes and runs exactly once with
    the values sent, and every card tapped meanwhile arrives once, in order."""
    simulator = start_simulator()
    with NoiseProxy(simulator.pty_path, NOISE, seed=3) as proxy:
        async with McuClient(proxy.host_path) as client:
            await client.wait_linked(within_s=10)
            events: list[Event] = []
            reader = asyncio.create_task(collect(client, events))
            uids = [f"04{n:06x}" for n in range(40)]
            for n in range(1, 1001):
                # Durations 1..1000 ms make each command's values its own: a damaged one could not pass.
                assert (
                    await client.command("LIGHTS", pattern=1, red=n % 256, green=0, blue=0, ms=n)
                    is ReplyResult.OK
                )
                if n % 25 == 0:
                    simulator.control(op="card", reader=0, uid=uids[n // 25 - 1])
            for _ in range(500):
                if len([e for e in events if e.name == "CARD_READ"]) == len(uids):
                    break
                await asyncio.sleep(0.01)
            reader.cancel()
            counters = client.counters
    state = simulator.state()
    executed = [fields for name, fields in state["executed"] if name == "LIGHTS"]
    assert [f["ms"] for f in executed] == list(range(1, 1001)), "a command lost, doubled or changed"
    assert all(f["red"] == f["ms"] % 256 and f["pattern"] == 1 for f in executed)
    taps = [bytes(e.fields["uid"]).hex() for e in events if e.name == "CARD_READ"]
    assert taps == uids, f"{len(taps)} of {len(uids)} card taps arrived"
    # The noise was real: frames were damaged and sent again, and the link held.
    stats = proxy.stats
    assert stats.host_to_device.flipped > 100, stats
    assert stats.device_to_host.dropped > 50, stats
    assert counters.rejected > 50, counters
    assert counters.retransmitted > 50, counters
    assert state["rejected_frames"] > 50


async def test_an_mcu_reset_mid_stream_is_detected_and_the_link_recovers(
    start_simulator: StartSimulator,
) -> None:
    simulator = start_simulator()
    async with McuClient(simulator.pty_path) as client:
        first = await client.wait_linked()
        results: list[ReplyResult | str] = []
        after_reset: list[ReplyResult] = []

        async def stream() -> None:
            """Commands back to back; once linked to the new boot, 50 more must all succeed."""
            for n in itertools.count(1):
                try:
                    result = await client.command("BUZZER", freq_hz=440, ms=n % 5000 + 1)
                except (LinkLostError, NotLinkedError):
                    results.append("lost")
                    await client.wait_linked(within_s=10)
                    continue
                results.append(result)
                info = client.linked_info
                if info is not None and info.boot_id != first.boot_id:
                    after_reset.append(result)
                    if len(after_reset) == 50:
                        return

        task = asyncio.create_task(stream())
        for _ in range(2_000):
            if len(results) >= 100:
                break
            await asyncio.sleep(0.005)
        simulator.control(op="reboot")
        await asyncio.wait_for(task, 20)
    assert client.counters.reconnects >= 1
    # Commands sent to the old MCU may have been lost with it (and said so); after, all succeed again.
    assert after_reset == [ReplyResult.OK] * 50
    assert set(results) <= {ReplyResult.OK, ReplyResult.NOT_LINKED, "lost"}
    assert simulator.state()["linked"] is True


async def test_a_host_gone_quiet_leaves_the_mcu_in_its_safe_state(start_simulator: StartSimulator) -> None:
    simulator = start_simulator()
    async with McuClient(simulator.pty_path) as client:
        await client.wait_linked()
        assert await client.command("DRIVE", left_mm_s=300, right_mm_s=300, deadline_ms=500) is ReplyResult.OK
        assert await client.command("COMPARTMENT_UNLOCK", index=2, ms=30_000) is ReplyResult.OK
        assert simulator.state()["outputs"] & Output.COMPARTMENT
    # The client is gone: no heartbeat. Within 500 ms (and a tick) the MCU gives up on the host.
    for _ in range(200):
        state = simulator.state()
        if not state["linked"]:
            break
        await asyncio.sleep(0.01)
    assert state["linked"] is False
    assert state["safe_state"] is True
    assert state["outputs"] & Output.FAULT_LIGHT
    assert not state["outputs"] & (Output.DRIVE | Output.COMPARTMENT | Output.GATE)
    assert state["gate"] == GateState.CLOSED.name


async def test_the_estop_refuses_actuators_until_released(start_simulator: StartSimulator) -> None:
    simulator = start_simulator()
    async with McuClient(simulator.pty_path) as client:
        await client.wait_linked()
        events: list[Event] = []
        reader = asyncio.create_task(collect(client, events))
        simulator.control(op="estop", pressed=True)
        for command, fields in (
            ("GATE_PULSE", {"ms": 1000}),
            ("DRIVE", {"left_mm_s": 100, "right_mm_s": 100, "deadline_ms": 100}),
            ("COMPARTMENT_UNLOCK", {"index": 0, "ms": 1000}),
            ("BUZZER", {"freq_hz": 440, "ms": 100}),
        ):
            assert await client.command(command, **fields) is ReplyResult.REFUSED_ESTOP, command
        assert await client.command("STOP") is ReplyResult.OK
        simulator.control(op="estop", pressed=False)
        assert await client.command("GATE_PULSE", ms=100) is ReplyResult.OK
        for _ in range(200):
            if len([e for e in events if e.name == "ESTOP"]) == 2:
                break
            await asyncio.sleep(0.01)
        reader.cancel()
    assert [e.fields["pressed"] for e in events if e.name == "ESTOP"] == [1, 0]
    assert [name for name, _ in simulator.state()["executed"]] == ["STOP", "GATE_PULSE"]


async def test_incompatible_firmware_is_refused_with_both_versions_named(
    start_simulator: StartSimulator,
) -> None:
    simulator = start_simulator("--schema-hash-override", "1234")
    async with McuClient(simulator.pty_path) as client:
        with pytest.raises(
            IncompatibleFirmwareError, match=r"MCU speaks protocol 1\.0 with schema 0x000004d2"
        ):
            await client.wait_linked(within_s=5)
        with pytest.raises(IncompatibleFirmwareError):
            await client.command("STOP")
    assert simulator.state()["linked"] is False
