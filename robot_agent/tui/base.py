"""What every screen of the engineers' UI shares: the line of screens, the banner when the agent is away, the
line an action's outcome is told on, and refusals put in plain words."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from robot_agent.tui.client import ApiRefusal

if TYPE_CHECKING:
    from robot_agent.tui.app import TuiApp

# mode, key, label: in the order the line of screens shows them
SCREENS: tuple[tuple[str, str, str], ...] = (
    ("overview", "1", "Overview"),
    ("checks", "2", "Checks"),
    ("hardware", "3", "Hardware"),
    ("faces", "4", "Faces"),
    ("store", "5", "Store"),
    ("logs", "6", "Logs"),
    ("sync", "7", "Sync"),
)


def plain(err: ApiRefusal) -> str:
    """A refusal as an engineer reads it."""
    if err.status == 429:
        wait = f": try again in {err.retry_after} s" if err.retry_after is not None else ""
        return f"Logins are locked{wait} ({err.detail})"
    if err.status == 423:
        return f"Refused, the e-stop is pressed: {err.detail}"
    if err.status == 403:
        return f"Not allowed: {err.detail}"
    if err.status == 401:
        return f"Not logged in: {err.detail}"
    if err.status == 503:
        return f"Not available: {err.detail}"
    if err.status == 408:
        return f"Nobody tapped: {err.detail}"
    return f"Refused ({err.status}): {err.detail}"


class Field(Input):
    """An input whose cursor blinks unless the app says not (snapshots)."""

    def on_mount(self) -> None:
        self.cursor_blink = self.tui.cursor_blink_on

    @property
    def tui(self) -> TuiApp:
        from robot_agent.tui.app import TuiApp

        app = self.app
        assert isinstance(app, TuiApp)
        return app


class NavBar(Horizontal):
    """The screens and their keys, the current one lit; who is logged in on the right."""

    def __init__(self, current: str) -> None:
        super().__init__(id="nav")
        self.current = current

    def compose(self) -> ComposeResult:
        for mode, key, label in SCREENS:
            yield Static(f"{key} {label}", classes="tab current" if mode == self.current else "tab")
        yield Static("", id="who")


class AgentBanner(Static):
    """Shown while nobody answers on the socket; the app keeps retrying."""

    def on_mount(self) -> None:
        self.display = False
        self.watch(self.app, "agent_error", self._show)

    def _show(self, error: str | None) -> None:
        self.display = error is not None
        self.update(error or "")


class RobotScreen(Screen[None]):
    """A screen of the logged-in UI: the line of screens, the banner, its body, its outcome line, the
    footer."""

    MODE: ClassVar[str] = ""
    # A list takes the keys; never a folded input (auto-focus runs before the styles that fold it).
    AUTO_FOCUS = "DataTable"

    @property
    def tui(self) -> TuiApp:
        from robot_agent.tui.app import TuiApp

        app = self.app
        assert isinstance(app, TuiApp)
        return app

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield AgentBanner(id="banner")
        yield from self.compose_body()
        yield Static("", id="outcome")
        yield Footer()

    def compose_body(self) -> ComposeResult:
        return iter(())

    def on_mount(self) -> None:
        self.watch(self.tui, "session", self._show_who)

    def _show_who(self, _session: object) -> None:
        session = self.tui.session
        who = self.query_one("#who", Static)
        if session is None:
            who.update("")
        else:
            who.update(f"{session.login}{' *' if session.stepped_up else ''}")

    def tell(self, text: str) -> None:
        """Say how an action went, on the outcome line."""
        self.query_one("#outcome", Static).update(text)
