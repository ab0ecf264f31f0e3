"""The behaviour at work: events fed in by the rest of the agent, the machine's actions carried out on the
devices and the speaker, timeouts ticked.

Events are queued (`post`, from any thread) and handled one at a time, in order, on the event loop. A ticket
verdict comes in as the desk's `CheckOutcome` (`on_outcome` has the scanner's and the face watcher's callback
shape); the driver looks up the passenger's seat and the places at their destination in the store, off the
loop, and hands the machine a `Checked`. Between events it sleeps until the machine's next deadline, then
ticks. With an `EStop` device it follows its changes itself (and its state at start). An answer's actions
are carried out while the next event is awaited, and that event waits for them, except the e-stop pressed,
which cancels whatever they still wait on (a command on a slow link) and is answered at once.

A device that refuses or fails (the e-stop pressed before the machine heard of it, the MCU link down) never
reaches the machine: the failure is logged and published as a live "fault" event, and the other actions of
the same answer still run. Device actions run in order (one link to the MCU), beside the words, so that a slow
device never delays what the robot says. State changes are published as live "behaviour" events.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from hardware.devices import Buzzer, Compartments, EStop, Gate, Lights
from hardware.errors import HardwareError
from models.tickets import Verdict
from robot_agent.behaviour.actions import Action, Buzz, OpenCompartment, PulseGate, Say, ShowLights
from robot_agent.behaviour.events import (
    Checked,
    CodeShown,
    EStopChanged,
    Event,
    FaceSeen,
    ReadyOrder,
    Seat,
    Tick,
)
from robot_agent.behaviour.machine import Behaviour
from robot_agent.behaviour.speaker import Speaker, SpeakerError
from robot_agent.live import LiveEvents
from robot_agent.tickets import CheckOutcome

log = logging.getLogger(__name__)

SeatOf = Callable[[uuid.UUID], Seat | None]
OrderOf = Callable[[uuid.UUID], ReadyOrder | None]  # a ticket's passenger's ready order (blocking)
Delivered = Callable[[ReadyOrder], bool]  # record a delivery (blocking); False: it was recorded before
_ORDER_VERDICTS = frozenset({Verdict.VALID, Verdict.ALREADY_USED})


@dataclass(frozen=True)
class _Outcome:
    """A verdict waiting for its seat to be looked up."""

    outcome: CheckOutcome
    at: float


class BehaviourDriver:
    """See the module. `clock` gives the events' stamps (the loop's time by default)."""

    def __init__(
        self,
        behaviour: Behaviour,
        *,
        gate: Gate,
        lights: Lights,
        buzzer: Buzzer,
        speaker: Speaker,
        estop: EStop | None = None,
        seat_of: SeatOf | None = None,
        live: LiveEvents | None = None,
        clock: Callable[[], float] | None = None,
        compartments: Compartments | None = None,
        order_of: OrderOf | None = None,
        delivered: Delivered | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.gate = gate
        self.lights = lights
        self.buzzer = buzzer
        self.speaker = speaker
        self.estop = estop
        self.seat_of = seat_of
        self.compartments = compartments
        self.order_of = order_of
        self.delivered = delivered
        self.live = live
        self._clock = clock
        self._queue: asyncio.Queue[Event | _Outcome] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acting: asyncio.Task[None] | None = None  # the last answer's actions, while they run
        self.faults = 0

    def now(self) -> float:
        """The time events are stamped with (any thread, once `run` has started)."""
        if self._clock is not None:
            return self._clock()
        loop = self._loop
        return loop.time() if loop is not None else asyncio.get_running_loop().time()

    # -- feeding it (any thread) ---------------------------------------------------------------------------

    def post(self, event: Event) -> None:
        """Queue an event (stamped by its sender with `now()`); these calls are for the loop's thread, and
        for any thread once `run` has started."""
        self._put(event)

    def on_outcome(self, outcome: CheckOutcome, _frame: object = None) -> None:
        """A ticket desk's verdict: the TicketScanner's and FaceWatcher's `on_outcome` (on the loop)."""
        self._put(_Outcome(outcome, self.now()))

    def face_seen(self, user_id: uuid.UUID | None) -> None:
        self._put(FaceSeen(self.now(), user_id))

    def code_shown(self) -> None:
        self._put(CodeShown(self.now()))

    def estop_changed(self, pressed: bool) -> None:
        """The e-stop's state, from whoever follows it (RobotStatus's "estop", when no EStop is given)."""
        self._put(EStopChanged(self.now(), pressed))

    def _put(self, item: Event | _Outcome) -> None:
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._enqueue(item)
        else:
            loop.call_soon_threadsafe(self._enqueue, item)

    def _enqueue(self, item: Event | _Outcome) -> None:
        if isinstance(item, EStopChanged) and item.pressed and self._acting is not None:
            # At once: what the last answer still waits on (a command on a slow link) stops now, whatever
            # events are queued before this one.
            self._acting.cancel()
        self._queue.put_nowait(item)

    # -- running -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Handle events until cancelled, ticking at the machine's deadlines."""
        self._loop = asyncio.get_running_loop()
        log.info(
            "behaviour running state=%s language=%s", self.behaviour.state, self.behaviour.settings.language
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                if self.estop is not None:
                    tasks.create_task(self._follow_estop(self.estop), name="behaviour e-stop")
                while True:
                    item = await self._next()
                    acting = self._acting
                    if acting is not None:
                        await asyncio.wait([acting])  # still cancellable by an e-stop meanwhile
                        self._acting = None
                        if not acting.cancelled() and (bug := acting.exception()) is not None:
                            raise bug  # device errors were reported; anything else is a bug: fail the part
                    actions = await self.decide(item)
                    if actions:
                        # Carried out while the next event is awaited: an e-stop pressed cancels them.
                        self._acting = asyncio.create_task(self.execute(actions), name="behaviour actions")
        finally:
            if self._acting is not None:
                self._acting.cancel()
                self._acting = None

    async def _next(self) -> Event | _Outcome:
        deadline = self.behaviour.deadline
        if deadline is None:
            return await self._queue.get()
        try:
            async with asyncio.timeout(max(0.0, deadline - self.now())):
                return await self._queue.get()
        except TimeoutError:
            return Tick(self.now())

    async def _follow_estop(self, estop: EStop) -> None:
        changes = estop.changes()  # subscribed now: no change between this and reading `pressed` is lost
        # Its state as it is now, pressed or not: a driver restarted halted hears of a release it missed.
        self.post(EStopChanged(self.now(), estop.pressed))
        async for pressed in changes:
            self.post(EStopChanged(self.now(), pressed))

    async def handle(self, item: Event | _Outcome) -> list[Action]:
        """Hand one event to the machine and carry out its actions; returns them (for tests)."""
        actions = await self.decide(item)
        if actions:
            await self.execute(actions)
        return actions

    async def decide(self, item: Event | _Outcome) -> list[Action]:
        """Hand one event to the machine; its actions, not yet carried out."""
        event = await self._checked(item) if isinstance(item, _Outcome) else item
        behaviour = self.behaviour
        before = (behaviour.state, behaviour.since)
        actions = behaviour.handle(event)
        if (behaviour.state, behaviour.since) != before and self.live is not None:
            # Entered anew (a second verdict too): the UI shows what the robot is doing now.
            self.live.publish(
                "behaviour",
                {"state": behaviour.state.value, "previous": before[0].value, "on": type(event).__name__},
            )
        return actions

    async def _checked(self, item: _Outcome) -> Checked:
        outcome = item.outcome
        seat = None
        if outcome.ok and outcome.ticket_id is not None and self.seat_of is not None:
            try:
                seat = await asyncio.to_thread(self.seat_of, outcome.ticket_id)
            except SQLAlchemyError as err:  # the passenger is let in all the same, without their seat
                self._fault("seat lookup", err)
        order = None
        if outcome.verdict in _ORDER_VERDICTS and outcome.ticket_id is not None and self.order_of is not None:
            try:
                order = await asyncio.to_thread(self.order_of, outcome.ticket_id)
            except SQLAlchemyError as err:  # the verdict stands; the order waits for the next showing
                self._fault("order lookup", err)
        return Checked.of(outcome, item.at, seat, order)

    async def execute(self, actions: list[Action]) -> None:
        """Device actions in order beside the words in order; failures reported, never raised."""
        devices = [a for a in actions if not isinstance(a, Say)]
        words = [a.utterance for a in actions if isinstance(a, Say)]

        async def run_devices() -> None:
            for action in devices:
                try:
                    await self._device(action)
                except HardwareError as err:
                    self._fault(_name(action), err)

        async def run_words() -> None:
            for utterance in words:
                try:
                    await self.speaker.say(utterance)
                except SpeakerError as err:
                    self._fault(f"say {utterance.key}", err)

        await asyncio.gather(run_devices(), run_words())

    async def _device(self, action: Action) -> None:
        if isinstance(action, ShowLights):
            await self.lights.show(action.pattern, action.red, action.green, action.blue, action.ms)
        elif isinstance(action, PulseGate):
            await self.gate.pulse(action.ms)
        elif isinstance(action, Buzz):
            await self.buzzer.beep(action.freq_hz, action.ms)
        elif isinstance(action, OpenCompartment):
            await self._hand_over(action)
        else:
            raise TypeError(f"no device carries out {action!r}")

    async def _hand_over(self, action: OpenCompartment) -> None:
        """Unlock the order's compartment; once it has opened, record the delivery (the `task_update` in the
        outbox with the robot's own record, one transaction) and publish a live "order" event. A compartment
        that does not open records nothing: the order waits for the passenger's next showing."""
        order = action.order
        if self.compartments is None:
            raise TypeError("an order to hand over, and no compartments")
        await self.compartments.unlock(order.compartment, action.ms)
        recorded = True
        if self.delivered is not None:
            try:
                recorded = await asyncio.to_thread(self.delivered, order)
            except SQLAlchemyError as err:
                self._fault("record the delivery", err)
                return
        log.info("order handed over task=%s compartment=%d", order.task_id, order.compartment)
        if self.live is not None and recorded:
            self.live.publish(
                "order",
                {
                    "state": "delivered",
                    "task_id": str(order.task_id),
                    "purchase_id": str(order.purchase_id),
                    "compartment": order.compartment,
                },
            )

    def _fault(self, what: str, err: Exception) -> None:
        self.faults += 1
        message = f"{err.__class__.__name__}: {err}"[:200]
        log.warning("behaviour could not %s: %s", what, message)
        if self.live is not None:
            self.live.publish("fault", {"part": "behaviour", "action": what, "error": message})

    def snapshot(self) -> dict[str, Any]:
        """For RobotStatus (`add_source("behaviour", driver.snapshot)`)."""
        behaviour = self.behaviour
        return {
            "state": behaviour.state.value,
            "language": behaviour.settings.language,
            "waiting": self._queue.qsize(),
            "faults": self.faults,
        }


def _name(action: Action) -> str:
    names = {
        ShowLights: "lights.show",
        PulseGate: "gate.pulse",
        Buzz: "buzzer.beep",
        OpenCompartment: "compartments.unlock",
    }
    return names.get(type(action), type(action).__name__)
