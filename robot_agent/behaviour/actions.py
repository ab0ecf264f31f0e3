"""What the behaviour asks of the robot: lights, the gate, the buzzer, words. Each device action is checked
against the MCU schema's bounds when it is made (`hardware.devices.check_arguments`), so the machine can only
produce commands every backend accepts; a wrong one fails in the machine's tests, not on the robot.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.devices import LightPattern, check_arguments
from robot_agent.behaviour.events import ReadyOrder
from robot_agent.behaviour.texts import Utterance


class Action:
    """Base of the actions (for `isinstance` in the driver and the tests)."""


@dataclass(frozen=True)
class ShowLights(Action):
    pattern: LightPattern
    red: int
    green: int
    blue: int
    ms: int

    def __post_init__(self) -> None:
        values = {"red": self.red, "green": self.green, "blue": self.blue, "ms": self.ms}
        check_arguments("LIGHTS", "ShowLights", {"pattern": int(self.pattern), **values})


@dataclass(frozen=True)
class PulseGate(Action):
    ms: int

    def __post_init__(self) -> None:
        check_arguments("GATE_PULSE", "PulseGate", {"ms": self.ms})


@dataclass(frozen=True)
class Buzz(Action):
    freq_hz: int
    ms: int

    def __post_init__(self) -> None:
        check_arguments("BUZZER", "Buzz", {"freq_hz": self.freq_hz, "ms": self.ms})


@dataclass(frozen=True)
class OpenCompartment(Action):
    """Unlock the compartment holding `order`; once it has opened, the driver records the delivery."""

    order: ReadyOrder
    ms: int

    def __post_init__(self) -> None:
        check_arguments(
            "COMPARTMENT_UNLOCK", "OpenCompartment", {"index": self.order.compartment, "ms": self.ms}
        )


@dataclass(frozen=True)
class Say(Action):
    utterance: Utterance
