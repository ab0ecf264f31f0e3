"""The agent in-process with its simulated devices and a real Mosquitto: its one status object names every
part, the MCU and the e-stop, reads the sync and assignment sources, and every change is a live event; a part
that keeps failing is reported and restarted while the rest of the robot goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from robot_agent.config import load_config
from robot_agent.identity import create_key_file
from robot_agent.runtime import Agent
from robot_agent.status import PartState
from tests.conftest import MosquittoFactory
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT
from tests.support.sync import robot_toml
from tests.support.tasks import eventually


async def test_the_agents_status_and_live_events_and_a_failing_part_that_takes_nothing_down(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    create_key_file(tmp_path / "robot.key")
    agent = Agent(load_config(robot_toml(tmp_path, ROBOT, broker.url, PASSWORDS[str(ROBOT)])))
    calls = {"n": 0}

    async def flaky() -> None:
        calls["n"] += 1
        raise RuntimeError("the bench part broke")

    agent.supervisor.add("flaky", flaky)
    run = asyncio.create_task(agent.run())
    try:
        async with agent.live.subscribe(["fault", "mcu", "estop", "card_tap"], after=0) as events:
            await eventually(lambda: agent.devices is not None, "devices open")
            assert agent.devices is not None
            assert agent.devices.simulator is not None
            agent.devices.simulator.press_estop()
            agent.devices.simulator.tap_card(1, b"\x04\x01\x02\x03")
            kinds: list[str] = []
            seen: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                async for event in events:
                    kinds.append(event.kind)
                    seen.append(event.data)
                    if {"fault", "mcu", "estop", "card_tap"} <= set(kinds):
                        break
        assert {"part": "flaky", "error": "RuntimeError: the bench part broke"}.items() <= seen[
            kinds.index("fault")
        ].items()
        assert seen[kinds.index("card_tap")] == {"reader": 1}
        await eventually(lambda: agent.link.connected, "the agent connected", 10)
        status = await agent.status.snapshot()
        parts = status["parts"]
        assert {
            "sync sender",
            "down-sync",
            "telemetry",
            "broker link",
            "mcu link",
            "e-stop",
            "card reader",
            "loop lag",
        } <= set(parts)
        assert parts["flaky"]["state"] in {"failed", "running"}
        assert parts["flaky"]["last_error"] == "RuntimeError: the bench part broke"
        assert all(parts[name]["state"] == "running" for name in parts if name != "flaky"), parts
        assert all(parts[name]["restarts"] == 0 for name in parts if name != "flaky"), parts
        assert status["mcu"]["linked"] is True
        assert status["estop"]["pressed"] is True
        assert status["sync"]["backlog"] == 0
        assert status["assignment"]["train_number"] == 742
        assert "vision" not in status  # no camera configured
        health = await agent.health()
        assert set(health) == {"parts", "mcu", "estop", "loop"}
        assert {"behaviour", "local api"} <= set(parts)
        # The local API serves the same status object on the agent's socket.
        await eventually(lambda: agent.config.api.socket.exists(), "the local API's socket", 10)
        connector = aiohttp.UnixConnector(path=str(agent.config.api.socket))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get("http://robot/status") as answer,
        ):
            served = await answer.json()
        assert answer.status == 200
        assert served["estop"]["pressed"] is True
        assert {"lag_p50_ms", "lag_p99_ms", "lag_max_ms", "window", "samples"} <= set(served["loop"])
        assert set(served["parts"]) == set((await agent.status.snapshot())["parts"])
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
    assert all(h.state is PartState.STOPPED for h in agent.status.parts().values())
    assert calls["n"] >= 1
