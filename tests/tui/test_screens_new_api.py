"""The screens' actions that need the local API's issue-17 parts (helper htuiapi's branch): step-up, the end
of a session on the same card's next tap ("session" events with the session's id), GET /faces, the capture
endpoint, GET /catalogue and GET /sync. Against the real API as in test_screens.py; they pass once that
branch is merged (on the TUI's branch alone those endpoints answer 404)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

from sqlalchemy import insert
from textual.widgets import DataTable, ProgressBar

from hardware.devices import GateState
from models.faces.choice import PipelineChoice
from models.privileges import ALL, Privilege
from robot_agent.api.faces import MatcherFaces
from robot_agent.faces.key import create_face_key, load_face_key
from robot_agent.faces.matcher import Matcher
from robot_agent.tui.faces import FRAMES
from robot_agent.tui.modals import ConfirmScreen, StepUpScreen
from robot_agent.tui.store import OrderScreen
from robot_agent.vision.fanout import FrameFanout
from tests.integration.test_local_api import CARD, TABLES
from tests.integration.test_local_api_tui import camera_on
from tests.support.face_files import model_bytes
from tests.support.face_frames import portrait_frame
from tests.tui.conftest import PASSWORD, Robot, add_engineer, keys, log_in_by_password, text_of, until


async def test_a_card_session_asks_the_password_once_then_moves_the_gate(robot: Robot) -> None:
    add_engineer(robot.store, "anna", ALL, card=CARD)
    app = robot.app()
    async with app.run_test() as pilot:
        await robot.tap_when_waiting(CARD)
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        assert app.session is not None
        assert app.session.stepped_up is False  # a card login is not stepped up
        await pilot.press("3", "g")
        await until(pilot, "the password asked", lambda: isinstance(app.screen, StepUpScreen))
        await pilot.press(*keys(PASSWORD), "enter")
        await until(pilot, "the gate pulsed", lambda: "Gate pulse: done" in text_of(app, "#outcome"))
        assert robot.devices.gate.state is GateState.OPEN
        assert app.session.stepped_up is True
        await pilot.press("b")  # asked once a session: not again
        await until(pilot, "the buzzer test", lambda: "Buzzer test: done" in text_of(app, "#outcome"))


async def test_a_wrong_step_up_password_is_told_and_nothing_moves(robot: Robot) -> None:
    add_engineer(robot.store, "anna", ALL, card=CARD)
    app = robot.app()
    async with app.run_test() as pilot:
        await robot.tap_when_waiting(CARD)
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("3", "g")
        await until(pilot, "the password asked", lambda: isinstance(app.screen, StepUpScreen))
        await pilot.press(*keys("not it"), "enter")
        await until(pilot, "the refusal", lambda: "Wrong password" in text_of(app, "#outcome"))
        assert robot.devices.gate.state is GateState.CLOSED
        assert app.current_mode == "hardware"


async def test_the_same_card_tapped_again_ends_the_session_and_says_so(robot: Robot) -> None:
    add_engineer(robot.store, "anna", ALL, card=CARD)
    app = robot.app()
    async with app.run_test() as pilot:
        await robot.tap_when_waiting(CARD)
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        assert app.session is not None
        assert app.session.id is not None
        robot.now[0] += 5.0  # past the reader's repeat window: a tap of its own, not the login's presentation
        robot.sim.tap_card(0, CARD)  # nobody waits for a card login now
        await until(pilot, "the login screen", lambda: app.current_mode == "login")
        assert "card tapped again" in text_of(app, "#login-message")


async def test_faces_are_listed_and_a_refused_delete_and_enrol_are_told(robot: Robot) -> None:
    add_engineer(robot.store, "fay", Privilege.FACES)
    user = uuid.UUID("1b4e28ba-2fa1-41d2-883f-0016d3cca427")
    with robot.store.begin() as conn:
        for _ in range(2):
            conn.execute(
                insert(TABLES["faces"]).values(
                    id=uuid.uuid4(),
                    user_id=user,
                    embedder="sface",
                    embedding=b"sealed",
                    created_at=dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC),
                    source="local",
                )
            )
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "fay")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("4")
        table = app.screen.query_one("#faces", DataTable)
        await until(pilot, "the faces listed", lambda: table.row_count == 1)
        assert [str(c) for c in table.get_row_at(0)][:3] == [str(user), "2", "local"]
        assert "2 faces of 1 passengers" in text_of(app, "#faces-total")
        await pilot.press("d")
        await until(pilot, "the question", lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")  # this robot has no face matching running: the API says so
        await until(pilot, "the refusal", lambda: "Not available" in text_of(app, "#outcome"))
        await pilot.press("e", *keys(str(uuid.uuid4())), "enter")
        await until(pilot, "the enrolment refused", lambda: "Not available" in text_of(app, "#outcome"))


async def test_an_order_is_placed_for_a_passenger_from_the_catalogue(robot: Robot) -> None:
    add_engineer(robot.store, "sam", Privilege.SALES)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "sam")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("5")
        catalogue = app.screen.query_one("#catalogue", DataTable)
        await until(pilot, "the catalogue", lambda: catalogue.row_count == 1)
        assert [str(c) for c in catalogue.get_row_at(0)] == ["Buffet", "Tea", "1.00", "3"]
        await pilot.press("o")
        await until(pilot, "the order form", lambda: isinstance(app.screen, OrderScreen))
        user = uuid.uuid4()
        await pilot.press(*keys(str(user)), "enter", "2", "enter", "4", "enter")
        await until(
            pilot, "the order placed", lambda: "placed: 2 x Tea in compartment 4" in text_of(app, "#outcome")
        )
        orders = app.screen.query_one("#orders", DataTable)
        await until(pilot, "the order listed", lambda: orders.row_count == 1)
        assert [str(c) for c in orders.get_row_at(0)][2:4] == ["placed", "4"]


async def test_the_sync_screen_shows_the_outbox(robot: Robot) -> None:
    add_engineer(robot.store, "sam", Privilege.SYNC)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "sam")  # audited: the outbox holds that login at least
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("7")
        await until(pilot, "the outbox", lambda: "events waiting" in text_of(app, "#sync-outbox"))
        assert "Outbox: 0 events" not in text_of(app, "#sync-outbox")
        assert "Cloud link:" in text_of(app, "#sync-online")


async def test_a_passenger_is_enrolled_from_the_camera_with_the_progress_shown(
    robot: Robot, tmp_path: Path
) -> None:
    """The faces screen's enrolment against the real API with a real face pipeline, over a camera on a
    looping folder of one passenger's portraits: the bar fills face by face, and the list shows them."""
    add_engineer(robot.store, "fay", Privilege.FACES)
    choice = PipelineChoice()
    create_face_key(tmp_path / "faces.key")
    matcher = Matcher(
        robot.store, load_face_key(tmp_path / "faces.key"), choice.spec, tmp_path / "faces.hnsw"
    )
    camera = camera_on(tmp_path / "obama", [portrait_frame("obama.jpg"), portrait_frame("obama2.jpg")])
    fanout = FrameFanout(camera)
    running = asyncio.create_task(fanout.run())
    user = uuid.uuid4()
    try:
        with choice.build(model_bytes) as pipeline:
            faces = MatcherFaces(pipeline, matcher)
            faces._frames = fanout
            robot.api._faces = faces
            app = robot.app()
            async with app.run_test() as pilot:
                await log_in_by_password(pilot, "fay")
                await until(pilot, "the overview", lambda: app.current_mode == "overview")
                await pilot.press("4")
                bar = app.screen.query_one("#enrol-bar", ProgressBar)
                await pilot.press("e", *keys(str(user)), "enter")
                await until(
                    pilot, "the enrolment done", lambda: "faces enrolled for" in text_of(app, "#outcome")
                )
                assert f"{FRAMES} of {FRAMES} faces enrolled for {user}" in text_of(app, "#outcome")
                assert (bar.progress, bar.total) == (FRAMES, FRAMES)
                assert f"{FRAMES} of {FRAMES} faces enrolled" in text_of(app, "#enrol-frame")
                table = app.screen.query_one("#faces", DataTable)
                await until(pilot, "the passenger listed", lambda: table.row_count == 1)
                assert [str(c) for c in table.get_row_at(0)][:3] == [str(user), str(FRAMES), "local"]
        assert len(matcher) == FRAMES
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(camera.stop)
