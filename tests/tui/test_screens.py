"""Each screen's actions, driven by Textual's pilot against the robot's real local API (conftest.py): what the
engineer presses, what the robot then does, and what the screen says."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import select
from textual.widgets import DataTable

from hardware.devices import CompartmentState, GateState
from models.privileges import ALL, Privilege
from robot_agent.api.server import LocalApi
from robot_agent.tui.app import TuiApp
from robot_agent.tui.client import ApiClient
from tests.integration.test_local_api import CARD, STRANGE_CARD, TABLES
from tests.tui.conftest import ITEM_ID, Robot, add_engineer, keys, log_in_by_password, text_of, until


async def test_a_card_tap_logs_in_and_an_unknown_card_is_refused_in_plain_words(robot: Robot) -> None:
    add_engineer(robot.store, "anna", ALL, card=CARD)
    app = robot.app()
    async with app.run_test() as pilot:
        assert "Tap your card" in text_of(app, "#card-prompt")
        tapping = robot.tap_when_waiting(STRANGE_CARD)
        await until(
            pilot,
            "the unknown card refused",
            lambda: "not an engineer's card" in text_of(app, "#login-message"),
        )
        await tapping
        assert app.current_mode == "login"
        tapping = robot.tap_when_waiting(CARD)  # the UI is waiting again by itself
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await tapping
        assert app.session is not None
        assert (app.session.login, app.session.via) == ("anna", "card")


async def test_five_wrong_passwords_lock_logins_and_the_wait_is_told(robot: Robot) -> None:
    add_engineer(robot.store, "anna", ALL)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "anna", "wrong")
        await until(
            pilot, "the wrong password", lambda: "Wrong login or password" in text_of(app, "#login-message")
        )
        for _ in range(4):  # the fifth failure locks logins
            await pilot.press(*keys("wrong"), "enter")
        await pilot.press(*keys("correct horse battery staple"), "enter")  # right, but locked now
        await until(pilot, "the lockout", lambda: "Logins are locked" in text_of(app, "#login-message"))
        assert "try again in 300 s" in text_of(app, "#login-message")
        assert app.current_mode == "login"


async def test_the_overview_shows_the_estop_pressed_and_released(robot: Robot) -> None:
    add_engineer(robot.store, "anna", ALL)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "anna")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await until(pilot, "the e-stop released", lambda: "E-stop: released" in text_of(app, "#estop"))
        assert "MCU link: up" in text_of(app, "#mcu")
        assert "Train 742" in text_of(app, "#assignment")
        robot.sim.press_estop()
        await until(pilot, "the e-stop pressed", lambda: "E-stop: PRESSED" in text_of(app, "#estop"))
        robot.sim.release_estop()
        await until(pilot, "the e-stop released again", lambda: "E-stop: released" in text_of(app, "#estop"))


async def test_hardware_tests_move_the_devices_and_are_greyed_out_under_the_estop(robot: Robot) -> None:
    add_engineer(robot.store, "anna", ALL)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "anna")  # a password login is stepped up at once
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("3")
        await until(pilot, "the hardware screen", lambda: app.current_mode == "hardware")
        await pilot.press("g")
        await until(pilot, "the gate pulsed", lambda: "Gate pulse: done" in text_of(app, "#outcome"))
        assert gate_state(robot) is GateState.OPEN
        await pilot.press("b")
        await until(pilot, "the buzzer test", lambda: "Buzzer test: done" in text_of(app, "#outcome"))
        await pilot.press("l")
        await until(pilot, "the lights test", lambda: "Lights test: done" in text_of(app, "#outcome"))
        await pilot.press("c", "3", "enter")
        await until(pilot, "compartment 3 open", lambda: "Compartment 3: done" in text_of(app, "#outcome"))
        assert robot.devices.compartments.state(3) is CompartmentState.UNLOCKED

        robot.sim.press_estop()
        await until(pilot, "the tests off", lambda: "e-stop is pressed" in text_of(app, "#hw-why"))
        assert app.screen.query_one("#test-gate").has_class("off")
        footer_gate = app.screen.active_bindings["g"]
        assert not footer_gate.enabled  # dimmed in the footer
        assert gate_state(robot) is GateState.CLOSED  # the e-stop's safe state closed it
        await pilot.press("g")
        await pilot.pause()
        assert gate_state(robot) is GateState.CLOSED


async def test_a_pasted_ticket_is_verified_and_live_checks_are_listed_with_reasons(robot: Robot) -> None:
    add_engineer(robot.store, "tom", Privilege.TICKETS)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "tom")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("2", "v", *keys("NOT A TICKET"), "enter")
        await until(pilot, "the verdict", lambda: "REFUSED (bad_prefix)" in text_of(app, "#outcome"))
        table = app.screen.query_one("#checks", DataTable)
        await until(pilot, "the check listed", lambda: table.row_count == 1)
        robot.live.publish(
            "ticket_checked",
            {
                "ok": True,
                "verdict": "valid",
                "reason": "",
                "method": "qr",
                "ticket_id": str(uuid.uuid4()),
                "checked_at": "2026-05-01T10:11:12+00:00",
                "train_number": 742,
                "seq": 9,
            },
        )
        await until(pilot, "the camera's check listed", lambda: table.row_count == 2)
        assert [str(c) for c in table.get_row_at(1)][:3] == ["10:11:12", "valid", "qr"]
        assert [str(c) for c in table.get_row_at(0)][1] == "BAD_PREFIX"


async def test_a_refused_privilege_is_said_in_plain_words(robot: Robot) -> None:
    add_engineer(robot.store, "tom", Privilege.TICKETS)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "tom")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("3", "g")
        await until(pilot, "the refusal", lambda: "Not allowed" in text_of(app, "#outcome"))
        assert "needs the GATE privilege" in text_of(app, "#outcome")


async def test_logs_arrive_live_and_filter_by_level_and_part(robot: Robot) -> None:
    add_engineer(robot.store, "anna", ALL)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "anna")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("6")
        for level, part, message in [
            ("INFO", "sync", "batch 7 acknowledged"),
            ("WARNING", "camera", "camera gone"),
            ("ERROR", "mcu", "MCU link lost"),
        ]:
            robot.live.publish(
                "log", {"level": level, "part": part, "logger": f"robot_agent.{part}", "message": message}
            )
        table = app.screen.query_one("#logs", DataTable)
        await until(pilot, "three lines", lambda: table.row_count == 3)
        await pilot.press("v")  # WARNING and above
        assert table.row_count == 2
        assert "Level WARNING" in text_of(app, "#log-filter")
        await pilot.press("p", *keys("mcu"), "enter")
        assert [str(c) for c in table.get_row_at(0)][1:] == ["ERROR", "mcu", "MCU link lost"]
        assert table.row_count == 1
        await pilot.press("v", "v")  # ERROR, then round to DEBUG
        assert "Level DEBUG" in text_of(app, "#log-filter")


async def test_sync_now_asks_the_agent(robot: Robot) -> None:
    add_engineer(robot.store, "sam", Privilege.SYNC)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "sam")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("7", "s")
        await until(pilot, "the sync asked", lambda: "Sync asked" in text_of(app, "#outcome"))
        assert robot.syncs == [1]


async def test_an_idle_session_that_ended_returns_to_the_login_screen_saying_why(robot: Robot) -> None:
    add_engineer(robot.store, "sam", Privilege.SYNC)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "sam")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        robot.now[0] += 100_000  # long past any idle limit
        await pilot.press("7", "s")
        await until(pilot, "the login screen", lambda: app.current_mode == "login")
        assert "Your session ended" in text_of(app, "#login-message")
        assert robot.syncs == []


async def test_logging_out_returns_to_the_login_screen(robot: Robot) -> None:
    add_engineer(robot.store, "sam", Privilege.SYNC)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "sam")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        await pilot.press("ctrl+o")
        await until(pilot, "the login screen", lambda: app.current_mode == "login")
        assert "logged out" in text_of(app, "#login-message")
        assert len(robot.api.sessions) == 0


async def test_with_no_agent_a_banner_says_so_until_the_agent_comes(robot: Robot, socket_dir: Path) -> None:
    nowhere = socket_dir / "later.sock"
    app = TuiApp(ApiClient(nowhere), status_every_s=0.2, retry_s=0.2, cursor_blink=False)
    async with app.run_test() as pilot:
        banner = app.screen.query_one("#banner")
        await until(pilot, "the banner", lambda: banner.display)
        assert text_of(app, "#banner") == f"no agent at {nowhere}: retrying"
        later = LocalApi(  # the agent comes up on that socket
            socket_path=nowhere,
            status=robot.status,
            live=robot.live,
            store=robot.store,
            devices=robot.devices,
            tickets=robot.api._tickets,
            sync_now=robot.api._sync_now,
        )
        serving = asyncio.create_task(later.run())
        try:
            await until(pilot, "the banner gone", lambda: not banner.display)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)


async def test_orders_are_listed_with_their_state(robot: Robot) -> None:
    """Orders exist on main; the catalogue's refusal (no GET /catalogue before issue 17's API) is told."""
    add_engineer(robot.store, "sam", Privilege.SALES)
    app = robot.app()
    async with app.run_test() as pilot:
        await log_in_by_password(pilot, "sam")
        await until(pilot, "the overview", lambda: app.current_mode == "overview")
        user = uuid.uuid4()
        placed = await app.client.place_order(_store_id(robot), user, {ITEM_ID: 1}, 2)
        await pilot.press("5")
        table = app.screen.query_one("#orders", DataTable)
        await until(pilot, "the order listed", lambda: table.row_count == 1)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[1:4] == [str(placed.purchase_id)[:8], "placed", "2"]


def _store_id(robot: Robot) -> uuid.UUID:
    with robot.store.connect() as conn:
        return uuid.UUID(str(conn.execute(select(TABLES["stores"].c.id)).scalar_one()))


def gate_state(robot: Robot) -> GateState:
    return robot.devices.gate.state
