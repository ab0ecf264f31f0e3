"""Every screen at 80x24 as an SVG snapshot (pytest-textual-snapshot), fed the recorded answers of
fixtures/ (replay.py) with the cursor's blink off, so the pictures change only when the UI does.
`pytest tests/tui/test_snapshots.py --snapshot-update` records them again: read the report's diff first.

The overview's SVG is also the README's picture."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from textual.pilot import Pilot
from textual.widgets import DataTable

from robot_agent.api import bodies
from robot_agent.tui.app import TuiApp
from robot_agent.tui.client import ApiClient
from robot_agent.tui.modals import StepUpScreen
from tests.tui.conftest import keys, until
from tests.tui.replay import FIXTURES, ReplayServer, fixture

SnapCompare = Callable[..., bool]


@pytest.fixture
def socket() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tui-snap-", dir="/tmp") as name:
        yield Path(name) / "api.sock"


def snap(
    snap_compare: SnapCompare,
    socket: Path,
    run_before: Callable[[Pilot[None]], Awaitable[None]],
    status: str = "status.json",
) -> bool:
    with ReplayServer(socket, status=status):
        app = TuiApp(ApiClient(socket), cursor_blink=False)
        return snap_compare(app, run_before=run_before)


def logged_in(key: str, ready: Callable[[TuiApp], object]) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Log in with the password form, go to the screen of `key`, wait until `ready(app)`."""

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, TuiApp)
        await pilot.press("p", *keys("anna"), "enter", *keys("secret"), "enter")
        await until(pilot, "the overview", lambda: app.current_mode == "overview" and app.status is not None)
        await pilot.press(key)
        await until(pilot, "the screen's data", lambda: ready(app))

    return run_before


def rows(selector: str, count: int) -> Callable[[TuiApp], bool]:
    return lambda app: app.screen.query_one(selector, DataTable).row_count == count


def test_login(snap_compare: SnapCompare, socket: Path) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.pause()

    assert snap(snap_compare, socket, run_before)


def test_login_password_form(snap_compare: SnapCompare, socket: Path) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("p", *keys("anna"))

    assert snap(snap_compare, socket, run_before)


def test_no_agent(snap_compare: SnapCompare) -> None:
    nowhere = Path("/nonexistent/robot-agent.sock")  # a fixed path: the banner names it
    app = TuiApp(ApiClient(nowhere), cursor_blink=False)

    async def run_before(pilot: Pilot[None]) -> None:
        await until(pilot, "the banner", lambda: app.agent_error is not None)

    assert snap_compare(app, run_before=run_before)


def test_overview(snap_compare: SnapCompare, socket: Path) -> None:
    assert snap(snap_compare, socket, logged_in("1", rows("#parts", 6)))


def test_checks(snap_compare: SnapCompare, socket: Path) -> None:
    assert snap(snap_compare, socket, logged_in("2", rows("#checks", 3)))


def test_hardware(snap_compare: SnapCompare, socket: Path) -> None:
    assert snap(snap_compare, socket, logged_in("3", lambda app: app.status is not None))


def test_hardware_under_the_estop(snap_compare: SnapCompare, socket: Path) -> None:
    ready = logged_in("3", lambda app: app.status is not None and app.status.estop["pressed"])
    assert snap(snap_compare, socket, ready, status="status-estop.json")


def test_step_up(snap_compare: SnapCompare, socket: Path) -> None:
    before = logged_in("3", lambda app: app.status is not None)

    async def run_before(pilot: Pilot[None]) -> None:
        await before(pilot)
        await pilot.press("g")
        await until(pilot, "the password asked", lambda: isinstance(pilot.app.screen, StepUpScreen))

    assert snap(snap_compare, socket, run_before)


def test_faces(snap_compare: SnapCompare, socket: Path) -> None:
    assert snap(snap_compare, socket, logged_in("4", rows("#faces", 3)))


def test_store(snap_compare: SnapCompare, socket: Path) -> None:
    assert snap(
        snap_compare,
        socket,
        logged_in("5", lambda app: rows("#catalogue", 3)(app) and rows("#orders", 2)(app)),
    )


def test_logs(snap_compare: SnapCompare, socket: Path) -> None:
    assert snap(snap_compare, socket, logged_in("6", rows("#logs", 4)))


def test_sync(snap_compare: SnapCompare, socket: Path) -> None:
    assert snap(snap_compare, socket, logged_in("7", rows("#cursors", 2)))


# -- the fixtures are what the API answers ----------------------------------------------------------------

MODELS: dict[str, type[BaseModel]] = {
    "status.json": bodies.StatusOut,
    "status-estop.json": bodies.StatusOut,
    "session.json": bodies.SessionOut,
    "orders.json": bodies.OrdersOut,
    # issue 17's new answers: the client's models until bodies.py has them (htuiapi's branch)
    "faces.json": bodies.FaceList,
    "catalogue.json": bodies.CatalogueOut,
    "sync.json": bodies.SyncOut,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fixtures_are_what_the_api_answers(name: str) -> None:
    raw: Any = fixture(name)
    model = MODELS[name]
    parsed = model.model_validate(raw)
    if name == "session.json":
        bodies.SessionOut.model_validate(raw)
    # nothing in the fixture that the model does not know (a renamed field would pass unseen otherwise)
    assert _unknown(parsed) == [], name


def test_event_fixtures_are_events() -> None:
    lines = (FIXTURES / "events.ndjson").read_text().splitlines()
    events = [bodies.EventOut.model_validate_json(line) for line in lines]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for event in events:
        if event.kind == "ticket_checked":
            bodies.TicketCheckOut.model_validate(event.data)
        if event.kind == "log":
            assert set(event.data) == {"level", "part", "logger", "message"}
        assert "token" not in event.data  # events carry no secret


def _unknown(model: BaseModel) -> list[str]:
    found: list[str] = []
    if model.model_config.get("extra") == "allow" and model.model_extra:
        if not isinstance(model, bodies.StatusOut):  # the status is open: one object per source
            found += list(model.model_extra)
    for value in model.__dict__.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                found += _unknown(item)
    return found
