"""`robot-agent run` as a process driving the MCU simulator on a real pty, against a real Mosquitto: SIGTERM
stops it within the issue's 5 s with the devices put in their safe state, and the faults of issue 16 (the MCU
simulator killed and restarted, the camera's folder taken away and put back, the broker stopped and started)
are each reported, in the agent's log and in its telemetry, and recovered from by the same process.

The agent's serial_url is a symlink to the simulator's pty, as udev's /dev/serial/by-id names are: a restarted
simulator has a new pty, and the link is pointed at it as a re-plugged board's would be."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from robot_agent.identity import create_key_file
from tests.conftest import MosquittoFactory
from tests.e2e.test_robot_agent_faults import log_of, start_agent, until
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT, Watcher, topic, watch
from tests.support.mosquitto import MosquittoBroker
from tests.support.simulator import Simulator
from tests.support.sync import robot_toml

StartSimulator = Callable[..., Simulator]
WITHIN_S = 20.0  # generous: the machine is shared; what is asserted is the outcome, not the time


def write_config(tmp_path: Path, broker: MosquittoBroker, serial_link: Path, camera: Path | None) -> Path:
    """robot.toml for ROBOT: the MCU on `serial_link`, telemetry every second, scanning `camera` if given."""
    create_key_file(tmp_path / "robot.key")
    path = robot_toml(tmp_path, ROBOT, broker.url, PASSWORDS[str(ROBOT)])
    text = path.read_text()
    text = text.replace("keepalive_s = 5\n", "keepalive_s = 5\ntelemetry_interval_s = 1\n")
    text = text.replace('backend = "simulated"', f'backend = "mcu"\nserial_url = "{serial_link}"')
    if camera is not None:
        text = text.replace("[camera.source]", "[camera]\nfps = 5\n\n[camera.source]")
        text = text.replace('type = "device"', f'type = "folder"\npath = "{camera}"')
        text = text.replace("scan = false", "scan = true")
    path.write_text(text)
    return path


def point(link: Path, simulator: Simulator) -> None:
    """Point the agent's serial port at `simulator`'s pty (atomically: the agent may be opening it)."""
    new = link.with_suffix(".new")
    new.unlink(missing_ok=True)
    new.symlink_to(simulator.pty_path)
    new.replace(link)


def telemetry(watcher: Watcher) -> list[dict[str, Any]]:
    with watcher.changed:
        messages = list(watcher.received)
    return [json.loads(m.payload) for m in messages if m.topic == topic(ROBOT, "up/telemetry")]


def part_state(report: dict[str, Any], part: str) -> str:
    return str(report["parts"][part]["state"])


async def until_in_log(agent: subprocess.Popen[bytes], log: Path, text: str, what: str) -> None:
    await until(lambda: text in log_of(log) or agent.poll() is not None, WITHIN_S, what)
    assert agent.poll() is None, f"{what}: the agent exited with {agent.returncode}:\n{log_of(log)}"


async def until_reported(
    watcher: Watcher, check: Callable[[dict[str, Any]], bool], log: Path, what: str
) -> dict[str, Any]:
    """The first telemetry report (from now on) that passes `check`."""
    seen = len(telemetry(watcher))
    try:
        await until(lambda: any(check(r) for r in telemetry(watcher)[seen:]), WITHIN_S, what)
    except AssertionError:
        raise AssertionError(f"{what}; reports: {telemetry(watcher)[seen:][-2:]}\n{log_of(log)}") from None
    return next(r for r in telemetry(watcher)[seen:] if check(r))


async def stop(agent: subprocess.Popen[bytes], log: Path) -> None:
    agent.send_signal(signal.SIGTERM)
    await until(lambda: agent.poll() is not None, WITHIN_S, "the agent to stop on SIGTERM")
    assert agent.returncode == 0, log_of(log)


async def test_sigterm_stops_the_agent_within_5_s_with_the_devices_in_their_safe_state(
    mosquitto_factory: MosquittoFactory,
    start_simulator: StartSimulator,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    simulator = start_simulator()
    serial_link = tmp_path / "mcu"
    point(serial_link, simulator)
    log = tmp_path / "agent.log"
    agent = start_agent(write_config(tmp_path, broker, serial_link, None), log)
    processes.append(agent)
    await until_in_log(agent, log, "MCU linked", "the agent to link to the MCU")
    await until_in_log(agent, log, "connected (session present", "the agent to connect to the broker")
    before = len(simulator.state()["executed"])

    signalled = time.monotonic()
    agent.send_signal(signal.SIGTERM)
    await until(lambda: agent.poll() is not None, WITHIN_S, "the agent to stop on SIGTERM")
    took_s = time.monotonic() - signalled
    text = log_of(log)
    assert agent.returncode == 0, text
    assert took_s < 5.0, f"the agent took {took_s:.1f} s to stop:\n{text}"
    # Lights off, then STOP (every actuator safe), each done by the MCU.
    executed = [name for name, _fields in simulator.state()["executed"][before:]]
    assert executed == ["LIGHTS", "STOP"], executed
    assert simulator.state()["executed"][before][1]["pattern"] == 0  # OFF
    order = ["stopping on SIGTERM", "devices in their safe state", "link closed", "agent stopped"]
    assert [text.index(line) for line in order] == sorted(text.index(line) for line in order), text


async def test_the_mcu_simulator_killed_and_restarted_is_reported_and_relinked(
    mosquitto_factory: MosquittoFactory,
    start_simulator: StartSimulator,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    watcher = watch(broker, topic(ROBOT, "up/telemetry"))
    simulator = start_simulator()
    serial_link = tmp_path / "mcu"
    point(serial_link, simulator)
    log = tmp_path / "agent.log"
    agent = start_agent(write_config(tmp_path, broker, serial_link, None), log)
    processes.append(agent)
    try:
        linked = await until_reported(watcher, lambda r: r["mcu"]["linked"], log, "telemetry: MCU linked")
        assert linked["mcu"]["firmware"] is not None

        simulator.process.kill()
        simulator.process.wait()
        await until_in_log(agent, log, "MCU link lost", "the agent to say the MCU link is lost")
        await until_reported(watcher, lambda r: not r["mcu"]["linked"], log, "telemetry: MCU not linked")

        point(serial_link, start_simulator())
        relinked = await until_reported(watcher, lambda r: r["mcu"]["linked"], log, "telemetry: relinked")
        assert relinked["mcu"]["firmware"] == linked["mcu"]["firmware"]
        assert agent.poll() is None, "the agent restarted"
        # The parts around the link never failed: the link's loss is the MCU's, reported as such.
        assert {name for name, part in relinked["parts"].items() if part["restarts"]} == set()
        await stop(agent, log)
    finally:
        watcher.client.disconnect()
        watcher.client.loop_stop()


async def test_a_camera_source_that_vanishes_is_reported_and_resumed(
    mosquitto_factory: MosquittoFactory,
    start_simulator: StartSimulator,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    watcher = watch(broker, topic(ROBOT, "up/telemetry"))
    simulator = start_simulator()
    serial_link = tmp_path / "mcu"
    point(serial_link, simulator)
    camera = tmp_path / "camera"
    camera.mkdir()
    for n in range(3):
        cv2.imwrite(str(camera / f"{n}.png"), np.full((120, 160, 3), 40 * n, np.uint8))
    log = tmp_path / "agent.log"
    agent = start_agent(write_config(tmp_path, broker, serial_link, camera), log)
    processes.append(agent)
    try:
        await until_reported(
            watcher, lambda r: r["tickets"]["camera"]["connected"], log, "telemetry: the camera streaming"
        )
        camera.rename(tmp_path / "camera-gone")
        failed = await until_reported(
            watcher, lambda r: part_state(r, "camera") == "failed", log, "telemetry: the camera failed"
        )
        assert "folder not found" in failed["parts"]["camera"]["last_error"]
        assert failed["mcu"]["linked"] is True  # the rest of the robot goes on
        assert part_state(failed, "ticket scanner") == "running"
        await until_in_log(agent, log, "part camera failed", "the agent to log the camera's fault")

        (tmp_path / "camera-gone").rename(camera)
        back = await until_reported(
            watcher,
            lambda r: part_state(r, "camera") == "running" and r["tickets"]["camera"]["connected"],
            log,
            "telemetry: the camera back",
        )
        assert back["tickets"]["camera"]["reconnects"] >= 1
        assert agent.poll() is None, "the agent restarted"
        await stop(agent, log)
    finally:
        watcher.client.disconnect()
        watcher.client.loop_stop()


async def test_a_broker_stopped_and_started_is_reported_and_the_robot_works_on(
    mosquitto_factory: MosquittoFactory,
    start_simulator: StartSimulator,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    simulator = start_simulator()
    serial_link = tmp_path / "mcu"
    point(serial_link, simulator)
    log = tmp_path / "agent.log"
    agent = start_agent(write_config(tmp_path, broker, serial_link, None), log)
    processes.append(agent)
    await until_in_log(agent, log, "connected (session present", "the agent to connect")
    await until_in_log(agent, log, "MCU linked", "the agent to link to the MCU")

    await asyncio.to_thread(broker.stop)
    await until_in_log(agent, log, "part broker link failed", "the agent to report the broker's loss")
    offline_from = len(log_of(log))
    # Offline, the robot works on: its telemetry goes to its log, the MCU stays linked (a card tap arrives).
    await until(
        lambda: "link=offline" in log_of(log)[offline_from:] and "failed_parts=broker link" in log_of(log),
        WITHIN_S,
        "an offline report naming the failed part",
    )
    simulator.control(op="card", reader=1, uid="04a1b2c3")
    await until_in_log(agent, log, "card tap reader=1", "the card tap to reach the agent while offline")

    await asyncio.to_thread(broker.start)
    watcher = watch(broker, topic(ROBOT, "up/telemetry"))
    try:
        back = await until_reported(
            watcher, lambda r: part_state(r, "broker link") == "running", log, "telemetry: broker link back"
        )
        assert back["parts"]["broker link"]["restarts"] == 1  # the one outage, counted
        assert back["mcu"]["linked"] is True
        assert agent.poll() is None, "the agent restarted"
        await stop(agent, log)
    finally:
        watcher.client.disconnect()
        watcher.client.loop_stop()
    assert "04a1b2c3" not in log_of(log).lower()  # a card UID never reaches the log
