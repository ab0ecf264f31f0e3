"""The robot's behaviour with passengers: a pure state machine, events in, actions out, no I/O.

    idle ─stranger─► engaged ──code or named face──► identified ──verdict──► valid | refused ──time──► idle
      └──code or named face────────────────────────►┘    └──timeout──► engaged (asked for the code)
    any verdict, in any state but halted, goes straight to valid or refused; engaged times out to idle
    e-stop pressed, in any state ──► halted ──released──► idle

- A face in view engages the robot (blue light, a greeting); a code read or a recognised face identifies the
  passenger, whose ticket the desk checks. A face match alone never opens anything: only a VALID verdict
  (`Checked`) pulses the gate. Valid: steady green, the gate, a chime with the wagon and place, then the
  hotels and attractions at the destination. Refused: blinking red (a passenger who cannot tell red from
  green still tells steady from blinking), the buzzer, the reason in plain words.
- A recognised passenger the desk finds no ticket for gives no verdict: after `identify_timeout_s` the robot
  asks for the code, once per engagement (their face seen again keeps them engaged, it does not ask again).
- Several verdicts in a row (a family with one ticket each) each answer anew: every VALID one pulses the
  gate. While a verdict shows, faces and codes change nothing (the passenger let in is still in view; a
  second passenger's code is checked in milliseconds and its verdict replaces the shown one).
- Timeouts are deadlines on the events' clock: any event past a deadline fires it first, and a `Tick`
  exists only to say time passed; `deadline` tells the driver when to tick.
- Selling: a verdict that comes with the passenger's ready order (`Checked.order`: the wiring looks it up for
  a ticket valid or already used) opens the order's compartment and says which; an already-used ticket with
  an order is that passenger back for it (green, no gate), without one it is refused as before. The driver
  records the delivery once the compartment has opened.
- The e-stop halts everything at once and says so: in `halted` only the release does anything (back to
  idle, saying so); a verdict that still arrives (a check already under way) is answered with the halt's
  words and nothing else, for the hardware refuses every actuator then anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from hardware.devices import LightPattern
from models.tickets import Verdict
from robot_agent.behaviour.actions import Action, Buzz, OpenCompartment, PulseGate, Say, ShowLights
from robot_agent.behaviour.events import (
    CardTapped,
    Checked,
    CodeShown,
    EStopChanged,
    Event,
    FaceSeen,
    ReadyOrder,
    Tick,
)
from robot_agent.behaviour.texts import Language, refusal_key, utterance
from robot_agent.config import BehaviourSection

LIGHTS_MAX_MS: Final = 60_000  # the MCU's LIGHTS bound
ATTENDING: Final = (LightPattern.PULSE, 0, 96, 255)
LET_IN: Final = (LightPattern.SOLID, 0, 255, 0)
REFUSED: Final = (LightPattern.BLINK, 255, 0, 0)
BUZZ_HZ: Final = 440
BUZZ_MS: Final = 600


class State(StrEnum):
    IDLE = "idle"
    ENGAGED = "engaged"
    IDENTIFIED = "identified"
    VALID = "valid"
    REFUSED = "refused"
    HALTED = "halted"


VERDICTS: Final = frozenset({State.VALID, State.REFUSED})


@dataclass(frozen=True)
class Settings:
    """The machine's settings: robot.toml's `[behaviour]` (`Settings.of(config.behaviour)`)."""

    language: Language = "ru"
    engaged_timeout_s: float = 20.0
    identify_timeout_s: float = 5.0
    verdict_s: float = 6.0
    gate_pulse_ms: int = 3000
    compartment_ms: int = 10_000  # how long a ready order's compartment stays unlocked

    @classmethod
    def of(cls, section: BehaviourSection) -> Settings:
        return cls(
            section.language,
            section.engaged_timeout_s,
            section.identify_timeout_s,
            section.verdict_s,
            section.gate_pulse_ms,
        )


def _ms(seconds: float, limit: int = LIGHTS_MAX_MS) -> int:
    return max(1, min(limit, round(seconds * 1000)))


class Behaviour:
    """See the module. Not thread-safe: one caller (the driver) hands it the events in order."""

    def __init__(self, settings: Settings | None = None, *, at: float = 0.0) -> None:
        self.settings = settings or Settings()
        self.state = State.IDLE
        self.since = at
        self.deadline: float | None = None  # when the current state times out, if it does
        # Asked for the code in this engagement: the recognised face seen again is no new identification
        # (else a passenger with no ticket here would be asked every few seconds).
        self._asked = False

    def handle(self, event: Event) -> list[Action]:
        """The actions `event` calls for, in order; the state moves with it."""
        actions = self._expire(event.at)
        if isinstance(event, EStopChanged):
            actions += self._estop(event)
        elif self.state is State.HALTED:
            if isinstance(event, Checked):
                actions.append(self._say("estop_halted"))
        elif isinstance(event, Checked):
            actions += self._verdict(event)
        elif isinstance(event, FaceSeen):
            actions += self._face(event)
        elif isinstance(event, CodeShown):
            actions += self._code(event)
        elif isinstance(event, Tick | CardTapped):
            pass  # a tick's work was done by `_expire`; a card is the local API's business
        return actions

    # -- transitions ---------------------------------------------------------------------------------------

    def _expire(self, now: float) -> list[Action]:
        if self.deadline is None or now < self.deadline:
            return []
        if self.state is State.ENGAGED:
            self._enter(State.IDLE, now)
            return [self._lights_off(), self._say("timeout")]
        if self.state is State.IDENTIFIED:
            # The check gave no verdict: a recognised passenger with no ticket here, or a desk that failed.
            self._enter(State.ENGAGED, now, self.settings.engaged_timeout_s)
            self._asked = True
            return [self._say("show_code")]
        # A verdict has been shown long enough.
        self._enter(State.IDLE, now)
        return [self._lights_off()]

    def _estop(self, event: EStopChanged) -> list[Action]:
        if event.pressed:
            if self.state is State.HALTED:
                return []
            self._enter(State.HALTED, event.at)
            return [self._say("estop_halted")]
        if self.state is not State.HALTED:
            return []
        self._enter(State.IDLE, event.at)
        return [self._say("estop_released")]

    def _face(self, event: FaceSeen) -> list[Action]:
        settings = self.settings
        if self.state is State.IDLE:
            if event.user_id is None:
                self._enter(State.ENGAGED, event.at, settings.engaged_timeout_s)
                return [self._attending(settings.engaged_timeout_s), self._say("greeting")]
            self._enter(State.IDENTIFIED, event.at, settings.identify_timeout_s)
            return [self._attending(settings.identify_timeout_s)]
        if self.state is State.ENGAGED:
            if event.user_id is None or self._asked:
                # Still someone in view: they stay engaged until last seen plus the timeout.
                self.deadline = event.at + settings.engaged_timeout_s
                return []
            self._enter(State.IDENTIFIED, event.at, settings.identify_timeout_s)
            return []
        return []  # identified: the check is under way; a verdict: its passenger is still in view

    def _code(self, event: CodeShown) -> list[Action]:
        settings = self.settings
        if self.state is State.IDLE:
            self._enter(State.IDENTIFIED, event.at, settings.identify_timeout_s)
            return [self._attending(settings.identify_timeout_s)]
        if self.state in (State.ENGAGED, State.IDENTIFIED):
            self._enter(State.IDENTIFIED, event.at, settings.identify_timeout_s)
        return []

    def _verdict(self, event: Checked) -> list[Action]:
        settings = self.settings
        verdict_ms = _ms(settings.verdict_s)
        order = event.order
        if order is not None and event.verdict is Verdict.ALREADY_USED:
            # A passenger let in earlier, back for their order: no gate, the compartment opens.
            self._enter(State.VALID, event.at, settings.verdict_s)
            return [ShowLights(*LET_IN, ms=verdict_ms), *self._hand_over(order)]
        if not event.ok:
            self._enter(State.REFUSED, event.at, settings.verdict_s)
            return [
                ShowLights(*REFUSED, ms=verdict_ms),
                Buzz(BUZZ_HZ, BUZZ_MS),
                self._say(refusal_key(event.verdict)),
            ]
        self._enter(State.VALID, event.at, settings.verdict_s)
        actions: list[Action] = [ShowLights(*LET_IN, ms=verdict_ms), PulseGate(settings.gate_pulse_ms)]
        if order is not None:
            actions += self._hand_over(order)
        seat = event.seat
        if seat is None:
            actions.append(self._say("valid_plain"))
            return actions
        actions.append(self._say("valid", wagon=seat.wagon, place=seat.place))
        if seat.hotels:
            actions.append(self._say("hotels", names=", ".join(seat.hotels)))
        if seat.attractions:
            actions.append(self._say("attractions", names=", ".join(seat.attractions)))
        return actions

    def _hand_over(self, order: ReadyOrder) -> list[Action]:
        return [
            OpenCompartment(order, self.settings.compartment_ms),
            self._say("order_ready", compartment=order.compartment + 1),
        ]

    # -- helpers -------------------------------------------------------------------------------------------

    def _enter(self, state: State, at: float, timeout_s: float | None = None) -> None:
        if state is not State.ENGAGED:
            self._asked = False
        self.state = state
        self.since = at
        self.deadline = at + timeout_s if timeout_s is not None else None

    def _say(self, key: str, **params: str | int) -> Say:
        return Say(utterance(key, self.settings.language, **params))

    @staticmethod
    def _attending(seconds: float) -> ShowLights:
        return ShowLights(*ATTENDING, ms=_ms(seconds))

    @staticmethod
    def _lights_off() -> ShowLights:
        return ShowLights(LightPattern.OFF, 0, 0, 0, ms=1)
