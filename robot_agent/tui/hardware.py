"""Hardware: the MCU link and the e-stop as GET /status says, and a test of each device (gate pulse, lights,
buzzer, a compartment). While the e-stop is pressed the tests are greyed out with the reason; the API would
refuse them anyway (423), and says so if a press comes between the status and the key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Static

from robot_agent.api import bodies
from robot_agent.tui.base import Field, RobotScreen
from robot_agent.tui.overview import since

GATE_MS = 1000
COMPARTMENT_MS = 5000
TESTS = ("gate", "lights", "buzzer", "compartment")


class HardwareScreen(RobotScreen):
    MODE = "hardware"
    CSS_PATH = "hardware.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "gate", "Gate pulse"),
        Binding("l", "lights", "Lights test"),
        Binding("b", "buzzer", "Buzzer test"),
        Binding("c", "compartment", "Open compartment"),
        Binding("escape", "leave", "Back", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="hardware-state"):
            yield Static("", id="hw-estop")
            yield Static("", id="hw-mcu")
            yield Static("", id="hw-why")
        with Vertical(id="tests"):
            yield Static(f"g  Gate: open it for {GATE_MS} ms", id="test-gate", classes="test")
            yield Static("l  Lights: blink white for 2 s", id="test-lights", classes="test")
            yield Static("b  Buzzer: 1000 Hz for 300 ms", id="test-buzzer", classes="test")
            yield Static(
                f"c  Compartment 0-7: unlock it for {COMPARTMENT_MS} ms",
                id="test-compartment",
                classes="test",
            )
            yield Field(
                placeholder="compartment number 0-7, then Enter",
                restrict=r"[0-7]?",
                id="compartment",
                classes="folded",
            )

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.tui, "status", self._show)

    @property
    def estop_pressed(self) -> bool:
        status = self.tui.status
        return status is not None and bool(status.estop.get("pressed"))

    def _show(self, status: bodies.StatusOut | None) -> None:
        if status is None:
            return
        pressed = bool(status.estop.get("pressed"))
        self.query_one("#hw-estop", Static).update(
            f"E-stop: {'PRESSED' if pressed else 'released'} since {since(status.estop.get('since'))}"
        )
        self.query_one("#hw-estop").set_class(pressed, "alarm")
        linked = bool(status.mcu.get("linked"))
        firmware = f", firmware {status.mcu['firmware']}" if status.mcu.get("firmware") else ""
        self.query_one("#hw-mcu", Static).update(f"MCU link: {'up' if linked else 'DOWN'}{firmware}")
        self.query_one("#hw-why", Static).update(
            "Tests are off: the e-stop is pressed. Release it on the robot first." if pressed else ""
        )
        for name in TESTS:
            self.query_one(f"#test-{name}").set_class(pressed, "off")
        if pressed:
            self.query_one("#compartment").display = False
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in TESTS and self.estop_pressed:
            return None  # shown dimmed: refused under the e-stop
        return True

    def _run(self, what: str, call: Callable[[], Awaitable[bodies.Done]]) -> None:
        if self.estop_pressed:
            self.tell(f"{what}: refused, the e-stop is pressed (release it first).")
            return
        self.test(what, call)

    @work(group="test", exclusive=True, exit_on_error=False)
    async def test(self, what: str, call: Callable[[], Awaitable[bodies.Done]]) -> None:
        self.tell(f"{what}...")
        done = await self.tui.act(call, self)
        if done is not None:
            self.tell(f"{what}: done, {done.detail}.")

    def action_gate(self) -> None:
        self._run("Gate pulse", lambda: self.tui.client.gate_pulse(GATE_MS))

    def action_lights(self) -> None:
        self._run("Lights test", self.tui.client.lights_test)

    def action_buzzer(self) -> None:
        self._run("Buzzer test", self.tui.client.buzzer_test)

    def action_compartment(self) -> None:
        field = self.query_one("#compartment", Input)
        field.display = True
        field.focus()

    def action_leave(self) -> None:
        self.query_one("#compartment").display = False
        self.set_focus(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            return
        index = int(event.value)
        self.action_leave()
        event.input.value = ""
        self._run(f"Compartment {index}", lambda: self.tui.client.compartment_open(index, COMPARTMENT_MS))
