"""Where the robot's words go: a speaker and display, behind one Protocol, with a simulated backend.

A backend must not hold the behaviour up: `say` queues the utterance (its cue, then its text, shown and
spoken) and returns; a backend that cannot is a `SpeakerError`, which the driver reports as a fault. The
simulated one keeps what was said, logs each utterance's key (the text may show a wagon and place, never
more), and publishes it as a live "utterance" event for the engineers' UI and the tests.
"""

from __future__ import annotations

import logging
from typing import Protocol

from robot_agent.behaviour.texts import Utterance
from robot_agent.errors import RobotAgentError
from robot_agent.live import LiveEvents

log = logging.getLogger(__name__)


class SpeakerError(RobotAgentError):
    """The speaker or display could not take an utterance."""


class Speaker(Protocol):
    async def say(self, utterance: Utterance) -> None:
        """Queue `utterance` to be played and shown; returns without waiting for it to be heard."""
        ...


class SimSpeaker:
    """The simulated speaker and display: `said` holds every utterance, oldest first."""

    def __init__(self, live: LiveEvents | None = None) -> None:
        self.live = live
        self.said: list[Utterance] = []

    async def say(self, utterance: Utterance) -> None:
        self.said.append(utterance)
        log.info("robot says key=%s cue=%s language=%s", utterance.key, utterance.cue, utterance.language)
        if self.live is not None:
            self.live.publish("utterance", utterance.as_json())

    @property
    def keys(self) -> list[str]:
        """The keys said, oldest first (what tests compare)."""
        return [u.key for u in self.said]
