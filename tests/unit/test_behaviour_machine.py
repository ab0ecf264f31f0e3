"""The behaviour state machine: every state met with every kind of event (one table), every timeout, the
e-stop in every state, and the rule that only a valid verdict opens the gate."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

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
    Seat,
    Tick,
)
from robot_agent.behaviour.machine import Behaviour, Settings, State
from robot_agent.tickets import CheckMethod

SETTINGS = Settings(
    language="en", engaged_timeout_s=20, identify_timeout_s=5, verdict_s=6, gate_pulse_ms=3000
)
T0 = 100.0
USER = uuid.UUID(int=7)
TICKET = uuid.UUID(int=42)
SEAT = Seat(7, 33, "LED", hotels=("Astoria", "Moika 22"), attractions=("Hermitage",))
ORDER = ReadyOrder(uuid.UUID(int=5), uuid.UUID(int=6), compartment=3)


def valid(at: float, seat: Seat | None = SEAT) -> Checked:
    return Checked(at, Verdict.VALID, "ok", TICKET, CheckMethod.CAMERA, seat)


def with_order(at: float, verdict: Verdict) -> Checked:
    """A verdict that comes with the passenger's ready order (the wiring's lookup)."""
    return Checked(at, verdict, "reason", TICKET, CheckMethod.CAMERA, SEAT, ORDER)


def refused(at: float, verdict: Verdict = Verdict.WRONG_TRAIN) -> Checked:
    return Checked(at, verdict, "train 743, this robot serves 742", TICKET, CheckMethod.CAMERA)


def describe(actions: list[Action]) -> list[str]:
    """Actions in a few words each: what the table compares."""
    words = []
    for action in actions:
        if isinstance(action, ShowLights):
            words.append(f"lights:{action.pattern.name}")
        elif isinstance(action, PulseGate):
            words.append("gate")
        elif isinstance(action, Buzz):
            words.append("buzz")
        elif isinstance(action, Say):
            words.append(f"say:{action.utterance.key}")
        elif isinstance(action, OpenCompartment):
            words.append(f"open:{action.order.compartment}")
        else:
            raise AssertionError(action)
    return words


# How to reach each state from idle at T0.
REACH: dict[State, list[Event]] = {
    State.IDLE: [],
    State.ENGAGED: [FaceSeen(T0, None)],
    State.IDENTIFIED: [CodeShown(T0)],
    State.VALID: [valid(T0)],
    State.REFUSED: [refused(T0)],
    State.HALTED: [EStopChanged(T0, True)],
}


def reach(state: State) -> Behaviour:
    behaviour = Behaviour(SETTINGS, at=T0)
    for event in REACH[state]:
        behaviour.handle(event)
    assert behaviour.state is state
    return behaviour


# The events, each at T0 + 1: before every deadline.
EVENTS: dict[str, Callable[[float], Event]] = {
    "stranger": lambda at: FaceSeen(at, None),
    "known face": lambda at: FaceSeen(at, USER),
    "code": CodeShown,
    "valid": valid,
    "refused": refused,
    "valid, order ready": lambda at: with_order(at, Verdict.VALID),
    "used, order ready": lambda at: with_order(at, Verdict.ALREADY_USED),
    "tick": Tick,
    "card": lambda at: CardTapped(at, 0),
    "estop pressed": lambda at: EStopChanged(at, True),
    "estop released": lambda at: EStopChanged(at, False),
}

LET_IN = ["lights:SOLID", "gate", "say:valid", "say:hotels", "say:attractions"]
TURNED_AWAY = ["lights:BLINK", "buzz", "say:refused.wrong_train"]
HALT = ["say:estop_halted"]
# A ready order opens its compartment beside the welcome; a passenger let in before is back for it.
LET_IN_WITH_ORDER = ["lights:SOLID", "gate", "open:3", "say:order_ready", *LET_IN[2:]]
HANDED_OVER = ["lights:SOLID", "open:3", "say:order_ready"]
S = State

TABLE: dict[tuple[State, str], tuple[State, list[str]]] = {
    (S.IDLE, "stranger"): (S.ENGAGED, ["lights:PULSE", "say:greeting"]),
    (S.IDLE, "known face"): (S.IDENTIFIED, ["lights:PULSE"]),
    (S.IDLE, "code"): (S.IDENTIFIED, ["lights:PULSE"]),
    (S.IDLE, "valid"): (S.VALID, LET_IN),
    (S.IDLE, "refused"): (S.REFUSED, TURNED_AWAY),
    (S.IDLE, "valid, order ready"): (S.VALID, LET_IN_WITH_ORDER),
    (S.IDLE, "used, order ready"): (S.VALID, HANDED_OVER),
    (S.IDLE, "tick"): (S.IDLE, []),
    (S.IDLE, "card"): (S.IDLE, []),
    (S.IDLE, "estop pressed"): (S.HALTED, HALT),
    (S.IDLE, "estop released"): (S.IDLE, []),
    (S.ENGAGED, "stranger"): (S.ENGAGED, []),
    (S.ENGAGED, "known face"): (S.IDENTIFIED, []),
    (S.ENGAGED, "code"): (S.IDENTIFIED, []),
    (S.ENGAGED, "valid"): (S.VALID, LET_IN),
    (S.ENGAGED, "refused"): (S.REFUSED, TURNED_AWAY),
    (S.ENGAGED, "valid, order ready"): (S.VALID, LET_IN_WITH_ORDER),
    (S.ENGAGED, "used, order ready"): (S.VALID, HANDED_OVER),
    (S.ENGAGED, "tick"): (S.ENGAGED, []),
    (S.ENGAGED, "card"): (S.ENGAGED, []),
    (S.ENGAGED, "estop pressed"): (S.HALTED, HALT),
    (S.ENGAGED, "estop released"): (S.ENGAGED, []),
    (S.IDENTIFIED, "stranger"): (S.IDENTIFIED, []),
    (S.IDENTIFIED, "known face"): (S.IDENTIFIED, []),
    (S.IDENTIFIED, "code"): (S.IDENTIFIED, []),
    (S.IDENTIFIED, "valid"): (S.VALID, LET_IN),
    (S.IDENTIFIED, "refused"): (S.REFUSED, TURNED_AWAY),
    (S.IDENTIFIED, "valid, order ready"): (S.VALID, LET_IN_WITH_ORDER),
    (S.IDENTIFIED, "used, order ready"): (S.VALID, HANDED_OVER),
    (S.IDENTIFIED, "tick"): (S.IDENTIFIED, []),
    (S.IDENTIFIED, "card"): (S.IDENTIFIED, []),
    (S.IDENTIFIED, "estop pressed"): (S.HALTED, HALT),
    (S.IDENTIFIED, "estop released"): (S.IDENTIFIED, []),
    # While a verdict shows, its passenger is still in view: faces and codes change nothing, and the next
    # verdict (a second passenger's, or a family's next ticket) answers anew.
    (S.VALID, "stranger"): (S.VALID, []),
    (S.VALID, "known face"): (S.VALID, []),
    (S.VALID, "code"): (S.VALID, []),
    (S.VALID, "valid"): (S.VALID, LET_IN),
    (S.VALID, "refused"): (S.REFUSED, TURNED_AWAY),
    (S.VALID, "valid, order ready"): (S.VALID, LET_IN_WITH_ORDER),
    (S.VALID, "used, order ready"): (S.VALID, HANDED_OVER),
    (S.VALID, "tick"): (S.VALID, []),
    (S.VALID, "card"): (S.VALID, []),
    (S.VALID, "estop pressed"): (S.HALTED, HALT),
    (S.VALID, "estop released"): (S.VALID, []),
    (S.REFUSED, "stranger"): (S.REFUSED, []),
    (S.REFUSED, "known face"): (S.REFUSED, []),
    (S.REFUSED, "code"): (S.REFUSED, []),
    (S.REFUSED, "valid"): (S.VALID, LET_IN),
    (S.REFUSED, "refused"): (S.REFUSED, TURNED_AWAY),
    (S.REFUSED, "valid, order ready"): (S.VALID, LET_IN_WITH_ORDER),
    (S.REFUSED, "used, order ready"): (S.VALID, HANDED_OVER),
    (S.REFUSED, "tick"): (S.REFUSED, []),
    (S.REFUSED, "card"): (S.REFUSED, []),
    (S.REFUSED, "estop pressed"): (S.HALTED, HALT),
    (S.REFUSED, "estop released"): (S.REFUSED, []),
    # Halted: nothing moves; a verdict still arriving is answered with the halt's words only.
    (S.HALTED, "stranger"): (S.HALTED, []),
    (S.HALTED, "known face"): (S.HALTED, []),
    (S.HALTED, "code"): (S.HALTED, []),
    (S.HALTED, "valid"): (S.HALTED, HALT),
    (S.HALTED, "refused"): (S.HALTED, HALT),
    (S.HALTED, "valid, order ready"): (S.HALTED, HALT),
    (S.HALTED, "used, order ready"): (S.HALTED, HALT),
    (S.HALTED, "tick"): (S.HALTED, []),
    (S.HALTED, "card"): (S.HALTED, []),
    (S.HALTED, "estop pressed"): (S.HALTED, []),
    (S.HALTED, "estop released"): (S.IDLE, ["say:estop_released"]),
}


def test_the_table_covers_every_state_and_every_kind_of_event() -> None:
    assert set(TABLE) == {(state, name) for state in State for name in EVENTS}


@pytest.mark.parametrize(("start", "name"), list(TABLE), ids=[f"{s.value}-{n}" for s, n in TABLE])
def test_transition(start: State, name: str) -> None:
    behaviour = reach(start)
    actions = behaviour.handle(EVENTS[name](T0 + 1))
    expected_state, expected_actions = TABLE[(start, name)]
    assert (behaviour.state, describe(actions)) == (expected_state, expected_actions)


def test_deadlines_follow_the_state() -> None:
    deadlines = {state: reach(state).deadline for state in State}
    assert deadlines == {
        S.IDLE: None,
        S.ENGAGED: T0 + 20,
        S.IDENTIFIED: T0 + 5,
        S.VALID: T0 + 6,
        S.REFUSED: T0 + 6,
        S.HALTED: None,
    }


# -- timeouts ------------------------------------------------------------------------------------------------


def test_an_engaged_passenger_who_shows_nothing_is_let_go_at_the_deadline() -> None:
    behaviour = reach(S.ENGAGED)
    assert behaviour.handle(Tick(T0 + 19.999)) == []
    assert describe(behaviour.handle(Tick(T0 + 20))) == ["lights:OFF", "say:timeout"]
    assert (behaviour.state, behaviour.deadline) == (S.IDLE, None)


def test_a_stranger_still_in_view_stays_engaged_until_last_seen_plus_the_timeout() -> None:
    behaviour = reach(S.ENGAGED)
    behaviour.handle(FaceSeen(T0 + 15, None))
    assert behaviour.handle(Tick(T0 + 25)) == []
    assert behaviour.state is S.ENGAGED
    # (The tuple reads the state after the tick.)
    assert (describe(behaviour.handle(Tick(T0 + 35))), behaviour.state) == (
        ["lights:OFF", "say:timeout"],
        S.IDLE,
    )


def test_an_identification_without_a_verdict_asks_for_the_code_then_lets_go() -> None:
    # A recognised passenger holding no ticket here: the desk records nothing and no verdict comes.
    behaviour = Behaviour(SETTINGS, at=T0)
    behaviour.handle(FaceSeen(T0, USER))
    assert behaviour.handle(Tick(T0 + 4.9)) == []
    assert describe(behaviour.handle(Tick(T0 + 5))) == ["say:show_code"]
    assert (behaviour.state, behaviour.deadline) == (S.ENGAGED, T0 + 25)
    assert describe(behaviour.handle(Tick(T0 + 25))) == ["lights:OFF", "say:timeout"]
    assert behaviour.state is S.IDLE


def test_a_code_shown_while_identified_restarts_the_wait_for_its_verdict() -> None:
    behaviour = reach(S.IDENTIFIED)
    behaviour.handle(CodeShown(T0 + 4))
    assert behaviour.handle(Tick(T0 + 6)) == []
    assert behaviour.deadline == T0 + 9


@pytest.mark.parametrize("state", [S.VALID, S.REFUSED])
def test_a_verdict_shows_for_its_time_then_the_robot_is_idle(state: State) -> None:
    behaviour = reach(state)
    assert behaviour.handle(Tick(T0 + 5.9)) == []
    assert describe(behaviour.handle(Tick(T0 + 6))) == ["lights:OFF"]
    assert (behaviour.state, behaviour.deadline) == (S.IDLE, None)


def test_a_verdict_restarts_its_time_when_the_next_one_comes() -> None:
    behaviour = reach(S.VALID)
    behaviour.handle(refused(T0 + 5))
    assert behaviour.handle(Tick(T0 + 7)) == []
    assert behaviour.deadline == T0 + 11


def test_a_late_event_fires_the_timeout_it_passed_first() -> None:
    behaviour = reach(S.VALID)
    actions = behaviour.handle(FaceSeen(T0 + 60, None))  # no tick came in between
    assert describe(actions) == ["lights:OFF", "lights:PULSE", "say:greeting"]
    assert behaviour.state is S.ENGAGED


def test_halted_never_times_out() -> None:
    behaviour = reach(S.HALTED)
    assert behaviour.handle(Tick(T0 + 1e6)) == []
    assert behaviour.state is S.HALTED


# -- the e-stop ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(State))
def test_the_estop_halts_every_state_at_once_says_so_and_release_returns_to_idle(state: State) -> None:
    behaviour = reach(state)
    pressed = behaviour.handle(EStopChanged(T0 + 1, True))
    if state is S.HALTED:
        assert pressed == []
    else:
        assert describe(pressed) == ["say:estop_halted"]  # nothing for the devices: they refuse now
    assert (behaviour.state, behaviour.deadline) == (S.HALTED, None)
    # Nothing happens while halted, however long, whatever is shown.
    for event in (Tick(T0 + 100), FaceSeen(T0 + 101, None), CodeShown(T0 + 102), valid(T0 + 103)):
        assert not [a for a in behaviour.handle(event) if not isinstance(a, Say)]
    assert describe(behaviour.handle(EStopChanged(T0 + 200, False))) == ["say:estop_released"]
    assert (behaviour.state, behaviour.since) == (S.IDLE, T0 + 200)
    assert describe(behaviour.handle(FaceSeen(T0 + 201, None))) == ["lights:PULSE", "say:greeting"]


def test_the_estop_pressed_past_a_deadline_still_halts() -> None:
    behaviour = reach(S.ENGAGED)
    actions = behaviour.handle(EStopChanged(T0 + 30, True))
    assert describe(actions) == ["lights:OFF", "say:timeout", "say:estop_halted"]
    assert behaviour.state is S.HALTED


# -- what opens the gate -------------------------------------------------------------------------------------


def test_a_face_match_alone_never_opens_the_gate() -> None:
    behaviour = Behaviour(SETTINGS, at=T0)
    actions: list[Action] = []
    for second in range(60):
        actions += behaviour.handle(FaceSeen(T0 + second, USER))
        actions += behaviour.handle(Tick(T0 + second + 0.5))
    assert not [a for a in actions if isinstance(a, PulseGate)]
    # Asked once for the code: the face seen again keeps them engaged without asking again.
    assert describe(actions).count("say:show_code") == 1
    assert behaviour.state is S.ENGAGED


def test_a_code_shown_after_being_asked_for_it_is_waited_for_again() -> None:
    behaviour = Behaviour(SETTINGS, at=T0)
    behaviour.handle(FaceSeen(T0, USER))
    behaviour.handle(Tick(T0 + 5))
    behaviour.handle(CodeShown(T0 + 8))
    assert (behaviour.state, behaviour.deadline) == (S.IDENTIFIED, T0 + 13)
    assert describe(behaviour.handle(valid(T0 + 9))) == LET_IN


@pytest.mark.parametrize("verdict", [v for v in Verdict if v is not Verdict.VALID])
def test_no_refusal_opens_the_gate_and_each_says_its_own_words(verdict: Verdict) -> None:
    behaviour = Behaviour(SETTINGS, at=T0)
    actions = behaviour.handle(refused(T0, verdict))
    assert describe(actions) == ["lights:BLINK", "buzz", f"say:refused.{verdict.value}"]


def test_several_valid_verdicts_in_a_row_each_pulse_the_gate() -> None:
    behaviour = Behaviour(SETTINGS, at=T0)
    actions: list[Action] = []
    for i in range(3):
        actions += behaviour.handle(valid(T0 + i))
    assert [a for a in actions if isinstance(a, PulseGate)] == [PulseGate(3000)] * 3


def test_let_in_green_steady_refused_red_blinking_with_the_buzzer() -> None:
    behaviour = Behaviour(SETTINGS, at=T0)
    let_in = behaviour.handle(valid(T0))
    turned_away = behaviour.handle(refused(T0 + 1))
    assert let_in[:2] == [ShowLights(LightPattern.SOLID, 0, 255, 0, 6000), PulseGate(3000)]
    assert turned_away[:2] == [ShowLights(LightPattern.BLINK, 255, 0, 0, 6000), Buzz(440, 600)]


def test_the_passenger_hears_their_wagon_place_and_what_waits_at_the_destination() -> None:
    texts = [a.utterance.text for a in Behaviour(SETTINGS).handle(valid(T0)) if isinstance(a, Say)]
    assert texts == [
        "Welcome aboard! Wagon 7, place 33.",
        "Hotels where you are going: Astoria, Moika 22.",
        "Worth seeing there: Hermitage.",
    ]
    russian = Behaviour(Settings(language="ru")).handle(valid(T0, Seat(7, 33, "LED")))
    assert [a.utterance.text for a in russian if isinstance(a, Say)] == [
        "Добро пожаловать! Вагон 7, место 33."
    ]


def test_a_valid_ticket_the_robot_holds_no_copy_of_is_welcomed_without_a_seat() -> None:
    actions = Behaviour(SETTINGS).handle(valid(T0, seat=None))
    assert describe(actions) == ["lights:SOLID", "gate", "say:valid_plain"]


def test_the_technical_reason_is_never_said() -> None:
    actions = Behaviour(SETTINGS).handle(refused(T0))
    said = [a.utterance.text for a in actions if isinstance(a, Say)]
    assert said == ["This ticket is for another train."]


def test_long_timeouts_stay_within_what_the_lights_accept() -> None:
    behaviour = Behaviour(Settings(engaged_timeout_s=600, verdict_s=60))
    assert behaviour.handle(FaceSeen(T0, None))[0] == ShowLights(LightPattern.PULSE, 0, 96, 255, 60_000)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ShowLights(LightPattern.SOLID, 0, 256, 0, 10),
        lambda: ShowLights(LightPattern.SOLID, 0, 0, 0, 0),
        lambda: PulseGate(10_001),
        lambda: Buzz(50, 100),
        lambda: Buzz(440, 5001),
    ],
)
def test_an_action_outside_the_mcus_bounds_cannot_be_made(make: Callable[[], Action]) -> None:
    with pytest.raises(ValueError, match="outside"):
        make()


def test_a_ready_order_opens_its_compartment_for_long_enough_and_names_it_from_one() -> None:
    actions = Behaviour(SETTINGS, at=T0).handle(with_order(T0, Verdict.ALREADY_USED))
    [opened] = [a for a in actions if isinstance(a, OpenCompartment)]
    assert opened == OpenCompartment(ORDER, SETTINGS.compartment_ms)
    [said] = [a.utterance for a in actions if isinstance(a, Say)]
    assert said.text == "Your order is ready: take it from compartment 4."


def test_a_refused_ticket_with_an_order_opens_nothing() -> None:
    """Only a valid or already-used ticket hands an order over: the wiring looks up none for others, and the
    machine opens nothing for one all the same."""
    actions = Behaviour(SETTINGS, at=T0).handle(with_order(T0, Verdict.REVOKED))
    assert describe(actions) == ["lights:BLINK", "buzz", "say:refused.revoked"]
