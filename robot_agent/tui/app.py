"""`robot-agent tui`: the engineers' terminal UI (issue 17). It talks to the agent only through the local
control API (client.py) and holds no business logic: what is allowed, refused or locked is the API's word,
shown in plain words.

The app keeps what every screen reads: the agent's status (polled, and at once on a status event), the live
event stream (resumed after the last event seen), the session, and whether the agent answers at all (a
banner while it does not; both loops retry every `retry_s`). Screens are modes, one key each; the login
screen is the only one before a session. An action goes through `act`: a 403 asking for the password once
(step-up) opens the dialog and retries the action once; a 401 ends the session and says why.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive

from robot_agent.api import bodies
from robot_agent.api.bodies import SessionOut
from robot_agent.tui.base import SCREENS, RobotScreen, plain
from robot_agent.tui.checks import ChecksScreen
from robot_agent.tui.client import AgentUnreachable, ApiClient, ApiRefusal
from robot_agent.tui.faces import FacesScreen
from robot_agent.tui.hardware import HardwareScreen
from robot_agent.tui.login import LoginScreen
from robot_agent.tui.logs import LogsScreen
from robot_agent.tui.modals import StepUpScreen
from robot_agent.tui.overview import OverviewScreen
from robot_agent.tui.store import StoreScreen
from robot_agent.tui.sync import SyncScreen

T = TypeVar("T")

KEPT_EVENTS = 500  # per kind kept for a screen opened later (checks, logs)
STATUS_EVERY_S = 1.0
RETRY_S = 2.0
STATUS_EVENTS = frozenset({"estop", "mcu", "part"})

Listener = Callable[[bodies.EventOut], None]


class TuiApp(App[None]):
    """See the module. `client` is not yet open; the app opens and closes it."""

    TITLE = "railbot engineers"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, Any]] = {
        "login": LoginScreen,
        "overview": OverviewScreen,
        "checks": ChecksScreen,
        "hardware": HardwareScreen,
        "faces": FacesScreen,
        "store": StoreScreen,
        "logs": LogsScreen,
        "sync": SyncScreen,
    }
    DEFAULT_MODE = "login"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        *[Binding(key, f"show('{mode}')", label, show=False) for mode, key, label in SCREENS],
        Binding("ctrl+o", "logout", "Log out"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    status: reactive[bodies.StatusOut | None] = reactive(None)
    agent_error: reactive[str | None] = reactive(None)
    session: reactive[SessionOut | None] = reactive(None)

    def __init__(
        self,
        client: ApiClient,
        *,
        status_every_s: float = STATUS_EVERY_S,
        retry_s: float = RETRY_S,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__()
        self.client = client
        self.status_every_s = status_every_s
        self.retry_s = retry_s
        self.cursor_blink_on = cursor_blink
        self.ended_reason: str | None = None  # why the last session ended, for the login screen
        self.last_seq: int | None = None
        self.kept: dict[str, deque[bodies.EventOut]] = {}
        self._listeners: set[Listener] = set()
        self._status_wanted = asyncio.Event()

    # -- lifetime ---------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.poll_status()
        self.stream_events()

    async def on_unmount(self) -> None:
        await self.client.close()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("show", "logout") and self.session is None:
            return False
        return True

    def action_show(self, mode: str) -> None:
        self.switch_mode(mode)

    @work(group="session", exclusive=True, exit_on_error=False)
    async def action_logout(self) -> None:
        try:
            await self.client.logout()
        except (ApiRefusal, AgentUnreachable):
            pass  # gone already, or nobody to tell: the session is over here either way
        self.session_over("logged out")

    # -- the agent's status and events ----------------------------------------------------------------------

    @work(group="status", exclusive=True, exit_on_error=False)
    async def poll_status(self) -> None:
        while True:
            try:
                self.status = await self.client.status()
                self.agent_error = None
                wait = self.status_every_s
            except AgentUnreachable as err:
                self.agent_error = f"no agent at {err.socket_path}: retrying"
                wait = self.retry_s
            except ApiRefusal as err:
                self.agent_error = f"the agent refused its status: {err.detail}"
                wait = self.retry_s
            self._status_wanted.clear()
            try:
                await asyncio.wait_for(self._status_wanted.wait(), wait)
            except TimeoutError:
                pass

    def want_status(self) -> None:
        """Read the status now (a status event came, an action changed something)."""
        self._status_wanted.set()

    @work(group="events", exclusive=True, exit_on_error=False)
    async def stream_events(self) -> None:
        while True:
            try:
                async for event in self.client.events(
                    after=self.last_seq if self.last_seq is not None else 0
                ):
                    self.last_seq = event.seq
                    self._dispatch(event)
            except (AgentUnreachable, ApiRefusal):
                pass
            await asyncio.sleep(self.retry_s)

    def listen(self, listener: Listener) -> None:
        self._listeners.add(listener)

    def unlisten(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def _dispatch(self, event: bodies.EventOut) -> None:
        kept = self.kept.setdefault(event.kind, deque(maxlen=KEPT_EVENTS))
        kept.append(event)
        if event.kind in STATUS_EVENTS:
            self.want_status()
        if event.kind == "session":
            self._session_event(event.data)
        for listener in list(self._listeners):
            listener(event)

    def _session_event(self, data: dict[str, Any]) -> None:
        session = self.session
        if session is None or session.id is None or data.get("id") != session.id:
            return
        if data.get("state") == "ended":
            self.session_over(str(data.get("reason") or "ended by the agent"))

    # -- the session ----------------------------------------------------------------------------------------

    def logged_in(self, session: SessionOut) -> None:
        self.session = session
        self.ended_reason = None
        self.switch_mode("overview")

    def session_over(self, reason: str) -> None:
        """Back to the login screen, saying why."""
        self.client.token = None
        self.session = None
        self.ended_reason = f"Your session ended: {reason}."
        if self.current_mode != "login":
            self.switch_mode("login")
        else:
            screen = self.screen
            if isinstance(screen, LoginScreen):
                screen.say(self.ended_reason)

    async def act(self, call: Callable[[], Awaitable[T]], screen: RobotScreen) -> T | None:
        """Run an action for `screen` (in one of its workers): the password asked once if the API wants it
        (then the action again), a 401 back to the login screen, any other refusal told in plain words on
        the screen's outcome line. None when it did not happen."""
        asked = False
        while True:
            try:
                return await call()
            except AgentUnreachable as err:
                screen.tell(f"No agent at {err.socket_path}: {err.why}")
                return None
            except ApiRefusal as err:
                if err.status == 401:
                    self.session_over(err.detail)
                    return None
                if not (err.step_up and not asked):
                    screen.tell(plain(err))
                    return None
                asked = True
                if not await self._step_up(err.detail, screen):
                    return None

    async def _step_up(self, why: str, screen: RobotScreen) -> bool:
        password = await self.push_screen_wait(StepUpScreen(why))
        if password is None:
            screen.tell("Cancelled: the action needs your password once this session.")
            return False
        try:
            self.session = await self.client.step_up(password)
        except AgentUnreachable as err:
            screen.tell(f"No agent at {err.socket_path}: {err.why}")
            return False
        except ApiRefusal as err:
            if err.status == 401 and not err.detail.lower().startswith("wrong password"):
                self.session_over(err.detail)  # the session itself ended meanwhile
            else:  # a wrong password leaves the session open, not stepped up
                screen.tell("Wrong password: the action was not done." if err.status == 401 else plain(err))
            return False
        return True
