"""The behaviour as robot.toml configures it: one call for the agent, which then feeds the driver and runs it.

    driver = open_behaviour(config, devices, store, live=live)
    scanner.on_code, scanner.on_outcome = driver.code_shown, driver.on_outcome
    faces.on_sighting, faces.on_outcome = driver.face_seen, driver.on_outcome
    status.add_source("behaviour", driver.snapshot)
    parts.create_task(driver.run(), name="behaviour")

The speaker is the simulated one until a robot has a real speaker and display (another `Speaker` backend).
"""

from __future__ import annotations

from sqlalchemy import Engine

from hardware.factory import Devices
from robot_agent.behaviour.driver import BehaviourDriver
from robot_agent.behaviour.machine import Behaviour, Settings
from robot_agent.behaviour.places import SeatLookup
from robot_agent.behaviour.speaker import SimSpeaker, Speaker
from robot_agent.clock import Clock
from robot_agent.config import RobotConfig
from robot_agent.live import LiveEvents
from robot_agent.selling import Deliveries, OrderLookup


def open_behaviour(
    config: RobotConfig,
    devices: Devices,
    store: Engine,
    *,
    live: LiveEvents | None = None,
    speaker: Speaker | None = None,
    clock: Clock | None = None,
) -> BehaviourDriver:
    """The behaviour's driver on `devices` (following their e-stop), with the seat and the places at the
    destination read from `store`, and a passenger's ready order (handed over from its compartment, the
    delivery recorded there, stamped by `clock`), its words going to `speaker` (the simulated one by
    default)."""
    section = config.behaviour
    return BehaviourDriver(
        Behaviour(Settings.of(section)),
        gate=devices.gate,
        lights=devices.lights,
        buzzer=devices.buzzer,
        speaker=speaker if speaker is not None else SimSpeaker(live),
        estop=devices.estop,
        seat_of=SeatLookup(store, section.places),
        live=live,
        compartments=devices.compartments,
        order_of=OrderLookup(store),
        delivered=Deliveries(store, clock if clock is not None else Clock()),
    )
