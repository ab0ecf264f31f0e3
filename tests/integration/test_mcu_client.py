"""McuClient over a real pty: link, commands, events, and the port failing under it."""

from __future__ import annotations

import asyncio

import pytest

from firmware_bridge.client import McuClient
from firmware_bridge.errors import LinkLostError, NotLinkedError
from firmware_bridge.schema import ReplyResult
from tests.support.pty_mcu import pty_mcu


async def test_commands_and_events_over_a_pty() -> None:
    async with pty_mcu() as mcu, McuClient(mcu.path) as client:
        linked = await client.wait_linked()
        assert linked.boot_id == 0xB007
        results = [await client.command("GATE_PULSE", ms=n) for n in range(1, 101)]
        assert results == [ReplyResult.OK] * 100
        assert [f["ms"] for _, f in mcu.board.executed] == list(range(1, 101))
        mcu.board.pending_events.append(("CARD_READ", {"reader": 1, "uid": bytes.fromhex("04a1b2c3")}))
        async with asyncio.timeout(5):
            event = await anext(client.events())
        assert (event.name, event.fields["reader"], event.fields["uid"]) == (
            "CARD_READ",
            1,
            bytes.fromhex("04a1b2c3"),
        )


async def test_a_command_before_the_link_is_refused() -> None:
    async with pty_mcu() as mcu:
        client = McuClient(mcu.path)
        with pytest.raises(NotLinkedError, match=mcu.path):
            await client.command("STOP")


async def test_a_missing_port_is_a_timeout_that_names_it_and_why() -> None:
    async with McuClient("/dev/pts/does-not-exist", reopen_s=0.05) as client:
        with pytest.raises(TimeoutError, match=r"/dev/pts/does-not-exist after 0.5 s: cannot open"):
            await client.wait_linked(within_s=0.5)


async def test_an_mcu_that_goes_quiet_fails_the_waiting_command_and_the_link_comes_back() -> None:
    async with pty_mcu() as mcu, McuClient(mcu.path) as client:
        await client.wait_linked()
        mcu.deaf = True
        with pytest.raises(LinkLostError, match="may or may not have run"):
            await client.command("GATE_PULSE", ms=5)
        mcu.deaf = False
        await client.wait_linked()
        assert await client.command("GATE_PULSE", ms=6) is ReplyResult.OK
        assert client.counters.reconnects >= 1
