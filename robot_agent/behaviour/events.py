"""What the behaviour hears: frozen events, each stamped with `at`, seconds on the agent's monotonic clock
(the event loop's time). The machine never reads a clock: its timeouts are measured on these stamps, and a
`Tick` is only time passing.

Nothing here is biometric or secret: a face is a user id at most (never logged, never said), a card tap is
its reader's number (the UID stays with the local API, which decides whether it is an engineer's).
A passenger's ready order comes with their verdict (`Checked.order`); the machine ignores events it does not
know.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from models.tickets import Verdict
from robot_agent.tickets import CheckMethod, CheckOutcome


@dataclass(frozen=True)
class Event:
    at: float


@dataclass(frozen=True)
class Tick(Event):
    """Time passes: a timeout due by `at` fires."""


@dataclass(frozen=True)
class FaceSeen(Event):
    """A face in view: `user_id` when the matcher named an enrolled passenger, None for a stranger. A named
    face opens nothing: its ticket's check (`Checked`, method face) is the answer."""

    user_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CodeShown(Event):
    """A code was read and goes to the ticket desk; its verdict follows as `Checked`."""


@dataclass(frozen=True)
class Seat:
    """Where a passenger let in goes, from the robot's copy of their ticket, and what waits at their
    destination (names only, a few)."""

    wagon: int
    place: int
    destination_id: str
    hotels: tuple[str, ...] = ()
    attractions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadyOrder:
    """A passenger's order the store has marked ready and the robot has not handed over yet: its store task
    and the compartment it was put in when placed (0..COMPARTMENTS-1)."""

    task_id: uuid.UUID
    purchase_id: uuid.UUID
    compartment: int


@dataclass(frozen=True)
class Checked(Event):
    """The ticket desk's verdict on a code or a recognised face (`CheckOutcome`), with the seat the wiring
    looked up (None when the robot holds no copy of the ticket, or for a refusal)."""

    verdict: Verdict
    reason: str  # the verifier's technical reason: for logs and engineers, never said
    ticket_id: uuid.UUID | None
    method: CheckMethod
    seat: Seat | None = None
    # The passenger's ready order, looked up by the wiring for a ticket valid or already used (a passenger
    # let in earlier who comes back for it): its compartment opens.
    order: ReadyOrder | None = None

    @classmethod
    def of(
        cls, outcome: CheckOutcome, at: float, seat: Seat | None = None, order: ReadyOrder | None = None
    ) -> Checked:
        return cls(at, outcome.verdict, outcome.reason, outcome.ticket_id, outcome.method, seat, order)

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VALID


@dataclass(frozen=True)
class EStopChanged(Event):
    """The e-stop was pressed (True) or released; the device's or the MCU's word."""

    pressed: bool


@dataclass(frozen=True)
class CardTapped(Event):
    """A card was tapped: the behaviour ignores it (an engineer's session is the local API's business, and a
    passenger's card means nothing yet); here so that the wiring may pass every tap and the live stream show
    it."""

    reader: int
