"""The login screen: "Tap your card" while a worker waits on POST /session/card (asked again after each 408),
or `p` for the login and password. Refusals and the lockout are said in plain words."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from robot_agent.tui.base import AgentBanner, Field, plain
from robot_agent.tui.client import AgentUnreachable, ApiRefusal

if TYPE_CHECKING:
    from robot_agent.tui.app import TuiApp

CARD_RETRY_S = 2.0  # after a refusal that is not about the card (another login waiting, no agent)


class LoginScreen(Screen[None]):
    CSS_PATH = "login.tcss"
    AUTO_FOCUS = ""  # nothing: the keys are the screen's until the form is opened
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "password", "Login and password"),
        Binding("escape", "card", "Tap a card instead"),
    ]

    @property
    def tui(self) -> TuiApp:
        from robot_agent.tui.app import TuiApp

        app = self.app
        assert isinstance(app, TuiApp)
        return app

    def compose(self) -> ComposeResult:
        yield AgentBanner(id="banner")
        with Vertical(id="login"):
            yield Static("railbot: engineers", id="login-title")
            yield Static("Tap your card on the robot's reader", id="card-prompt")
            with Vertical(id="password-form", classes="folded"):
                yield Field(placeholder="login", id="login-name")
                yield Field(placeholder="password", password=True, id="login-password")
            yield Static("", id="login-message")
        yield Footer()

    def on_screen_resume(self) -> None:
        self.say(self.tui.ended_reason or "")
        self._show_form(False)

    def on_screen_suspend(self) -> None:
        self.workers.cancel_group(self, "card")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        form = self.query_one("#password-form").display
        if action == "password":
            return not form
        if action == "card":
            return form
        return True

    def say(self, text: str) -> None:
        self.query_one("#login-message", Static).update(text)

    def action_password(self) -> None:
        self._show_form(True)

    def action_card(self) -> None:
        self._show_form(False)

    def _show_form(self, form: bool) -> None:
        self.query_one("#password-form").display = form
        self.query_one("#card-prompt").display = not form
        if form:
            self.workers.cancel_group(self, "card")
            self.query_one("#login-name", Input).focus()
        else:
            self.set_focus(None)
            self.wait_for_card()
        self.refresh_bindings()

    @work(group="card", exclusive=True, exit_on_error=False)
    async def wait_for_card(self) -> None:
        client = self.tui.client
        while True:
            try:
                session = await client.login_card()
            except AgentUnreachable:
                await asyncio.sleep(self.tui.retry_s)  # the banner says so
                continue
            except ApiRefusal as err:
                if err.status == 408:
                    continue  # nobody tapped in time: wait again
                if err.status == 401:
                    self.say("That card is not an engineer's card on this robot.")
                    continue
                self.say(plain(err))
                if err.status == 503:
                    return  # card login is off here: the login and password remain
                await asyncio.sleep(err.retry_after or CARD_RETRY_S)
                continue
            self.tui.logged_in(session)
            return

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = self.query_one("#login-name", Input)
        password = self.query_one("#login-password", Input)
        if event.input is name:
            password.focus()
        elif name.value and password.value:
            self.log_in(name.value, password.value)

    @work(group="password", exclusive=True, exit_on_error=False)
    async def log_in(self, login: str, password: str) -> None:
        field = self.query_one("#login-password", Input)
        try:
            session = await self.tui.client.login_password(login, password)
        except AgentUnreachable as err:
            self.say(f"No agent at {err.socket_path}: {err.why}")
            return
        except ApiRefusal as err:
            field.value = ""
            self.say("Wrong login or password." if err.status == 401 else plain(err))
            return
        field.value = ""
        self.tui.logged_in(session)
