"""The local API's parts the engineers' TUI needs (issue 17), served for real on a unix socket: step-up, the
card tapped again and idle time ending a session (and its "session" events), the faces listed and enrolled
from a real camera (a folder of real portraits) through the quality gate, the catalogue, the sync's state, log
lines with their part, and the OpenAPI document. An attacker's view runs through it: no FACES, no faces; a
card session without the password moves no hardware; password guesses at step-up count toward the lock; no
token, card UID, password or embedding in a log line or an event."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
from openapi_spec_validator import validate
from sqlalchemy import insert

from hardware.devices import GateState
from models.faces.choice import PipelineChoice
from models.privileges import ALL, Privilege
from robot_agent.api.faces import MatcherFaces
from robot_agent.api.logs import LiveLogHandler
from robot_agent.api.server import NOBODY, LocalApi, SyncLink
from robot_agent.api.sessions import CARD_REPEAT_S
from robot_agent.config import CameraSection
from robot_agent.faces import records
from robot_agent.faces.key import create_face_key, load_face_key
from robot_agent.faces.matcher import Matcher
from robot_agent.status import RobotStatus
from robot_agent.store import replica
from robot_agent.vision.camera import Camera
from robot_agent.vision.fanout import FrameFanout
from tests.integration import test_local_api as base
from tests.integration.test_local_api import (
    CARD,
    PASSWORD,
    ROBOT,
    STORE_ID,
    TABLES,
    Robot,
    add_engineer,
    outbox_events,
    tap_when_waiting,
)
from tests.support.face_files import model_bytes
from tests.support.face_frames import GREY, portrait_frame, two_people_frame
from tests.support.tasks import eventually

robot = base.robot  # the same fixture: a LocalApi on a unix socket over simulated devices and a SQLite store

OTHER_CARD = bytes.fromhex("04b0b0b0b0b0b0")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def card_login(robot: Robot, uid: bytes) -> dict[str, Any]:
    robot.api._card_login_s = 10.0
    tapping = tap_when_waiting(robot, uid)
    response = await robot.client.post("/session/card")
    await tapping
    assert response.status == 200, await response.text()
    session: dict[str, Any] = await response.json()
    return session


def events(robot: Robot, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in robot.live.recent() if e.kind == kind]


def audited(robot: Robot) -> list[tuple[str, str]]:
    return [(e["action"], e["detail"]) for e in outbox_events(robot.store, "engineer_action")]


# -- step-up ---------------------------------------------------------------------------------------------


async def test_a_card_session_moves_no_hardware_nor_faces_until_the_password_is_given_once(
    robot: Robot,
) -> None:
    add_engineer(robot.store, "anna", ALL, card=CARD)
    add_engineer(robot.store, "sam", Privilege.SYNC, card=OTHER_CARD)
    session = await card_login(robot, CARD)
    token = session["token"]
    assert session["stepped_up"] is False
    assert session["id"] == hashlib.sha256(token.encode()).hexdigest()[:16]
    shown = await (await robot.client.get("/session", headers=bearer(token))).json()
    assert (shown["id"], shown["stepped_up"], shown["token"]) == (session["id"], False, None)

    # what moves hardware or touches faces: refused, saying step-up, audited; the gate stays closed
    for method, path, body in [
        ("POST", "/actions/gate/pulse", {"ms": 500}),
        ("POST", "/actions/buzzer/test", {}),
        ("POST", "/actions/compartments/2/open", {}),
        ("POST", f"/actions/faces/{uuid.uuid4()}", {"images": ["aGVsbG8="]}),
        ("POST", f"/actions/faces/{uuid.uuid4()}/capture", {}),
        ("DELETE", f"/actions/faces/{uuid.uuid4()}", None),
    ]:
        refused = await robot.client.request(method, path, json=body, headers=bearer(token))
        assert refused.status == 403, path
        assert await refused.json() == {
            "detail": "this action needs your password once a session (step-up)",
            "step_up": True,
        }
    assert robot.devices.gate.state is GateState.CLOSED
    assert ("gate.pulse", "refused: needs step-up") in audited(robot)
    # what moves nothing goes on without it
    assert (await robot.client.post("/actions/sync", headers=bearer(token))).status == 200

    # the order of refusals: the privilege before step-up, step-up before the e-stop
    sam = await card_login(robot, OTHER_CARD)
    lacking = await robot.client.post("/actions/gate/pulse", json={}, headers=bearer(sam["token"]))
    assert lacking.status == 403
    assert await lacking.json() == {"detail": "gate.pulse needs the GATE privilege, which sam lacks"}
    robot.sim.press_estop()
    under_estop = await robot.client.post("/actions/gate/pulse", json={}, headers=bearer(token))
    assert (under_estop.status, (await under_estop.json()).get("step_up")) == (403, True)

    stepped = await robot.client.post("/session/step-up", json={"password": PASSWORD}, headers=bearer(token))
    assert stepped.status == 200, await stepped.text()
    out = await stepped.json()
    assert (out["id"], out["stepped_up"], out["token"]) == (session["id"], True, None)
    assert (await robot.client.post("/actions/gate/pulse", json={}, headers=bearer(token))).status == 423
    robot.sim.release_estop()
    assert (await robot.client.post("/actions/gate/pulse", json={}, headers=bearer(token))).status == 200
    gate: GateState = robot.devices.gate.state  # mypy narrowed it to CLOSED above
    assert gate is GateState.OPEN
    assert ("session.step_up", "done") in audited(robot)

    # a password login has it at once; step-up wants a session
    password = await (await robot.login("anna")).json()
    assert password["stepped_up"] is True
    assert (await robot.client.post("/session/step-up", json={"password": PASSWORD})).status == 401


async def test_a_wrong_password_at_step_up_is_a_guess_that_counts_toward_the_lock(robot: Robot) -> None:
    engineer = add_engineer(robot.store, "anna", ALL, card=CARD)
    token = (await card_login(robot, CARD))["token"]
    for n in range(1, 5):
        wrong = await robot.client.post(
            "/session/step-up", json={"password": f"guess {n}"}, headers=bearer(token)
        )
        assert wrong.status == 401
        assert "wrong password" in (await wrong.json())["detail"]
        assert robot.api.guard.failures == n
    assert (await robot.login("anna", "guess 5")).status == 401  # the fifth, at the login: locked
    locked = await robot.client.post("/session/step-up", json={"password": PASSWORD}, headers=bearer(token))
    assert locked.status == 429
    assert locked.headers["Retry-After"] == "300"
    assert (await robot.login("anna")).status == 429
    # the session itself goes on, without step-up
    session = await (await robot.client.get("/session", headers=bearer(token))).json()
    assert session["stepped_up"] is False
    assert (await robot.client.post("/actions/gate/pulse", json={}, headers=bearer(token))).status == 403
    robot.now[0] += 300
    opened = await robot.client.post("/session/step-up", json={"password": PASSWORD}, headers=bearer(token))
    assert opened.status == 200
    assert robot.api.guard.failures == 0
    trail = [
        (e["engineer_id"], e["action"], e["detail"])
        for e in outbox_events(robot.store, "engineer_action")
        if e["action"] in {"session.step_up", "login.password", "login.locked"}
    ]
    assert trail == [
        *[(engineer, "session.step_up", "failed: wrong password")] * 4,
        (engineer, "login.password", "failed: wrong password"),
        (NOBODY, "login.locked", "5 failed logins: locked for 300 s"),
        (engineer, "session.step_up", "done"),
    ]


# -- sessions end: the card again, idle time, logout ------------------------------------------------------


async def test_the_card_that_opened_a_session_ends_it_when_tapped_again(robot: Robot) -> None:
    add_engineer(robot.store, "anna", ALL, card=CARD)
    add_engineer(robot.store, "bob", ALL, card=OTHER_CARD)
    anna = await card_login(robot, CARD)
    bob = await card_login(robot, OTHER_CARD)
    anna_by_password = (await (await robot.login("anna")).json())["token"]

    # the card still on the reader right after its login: the same presentation, not a second tap
    robot.sim.tap_card(0, CARD)
    await eventually(lambda: len(events(robot, "card_tap")) == 3, "the repeated tap read")
    assert events(robot, "card_tap")[-1] == {"reader": 0, "for": None}
    assert (await robot.client.get("/session", headers=bearer(anna["token"]))).status == 200

    robot.now[0] += CARD_REPEAT_S
    robot.sim.tap_card(0, CARD)
    await eventually(lambda: events(robot, "card_tap")[-1] == {"reader": 0, "for": "logout"}, "logged out")
    assert (await robot.client.get("/session", headers=bearer(anna["token"]))).status == 401
    # another engineer's card session, and anna's own password session, go on
    assert (await robot.client.get("/session", headers=bearer(bob["token"]))).status == 200
    assert (await robot.client.get("/session", headers=bearer(anna_by_password))).status == 200
    ended = [e for e in events(robot, "session") if e["state"] == "ended"]
    assert ended == [{"id": anna["id"], "state": "ended", "reason": "card tapped again"}]
    assert ("logout", "done: card tapped again") in audited(robot)
    opened = [e for e in events(robot, "session") if e["state"] == "opened"]
    assert [e["via"] for e in opened] == ["card", "card", "password"]
    assert all(set(e) == {"id", "state", "via"} for e in opened)


async def test_a_session_ends_after_ten_idle_minutes_by_itself_and_says_so(
    tmp_path: Path, robot: Robot
) -> None:
    add_engineer(robot.store, "anna", Privilege.SYNC)
    now = [5_000.0]
    api = LocalApi(
        socket_path=tmp_path / "idle.sock",
        status=RobotStatus(ROBOT),
        live=robot.live,
        store=robot.store,
        devices=robot.devices,
        tickets=robot.api._tickets,
        sync_now=_nothing,
        monotonic=lambda: now[0],
    )
    api.sweep_s = 0.02
    serving = asyncio.create_task(api.run())
    await asyncio.wait_for(api.listening.wait(), 10)
    connector = aiohttp.UnixConnector(path=str(api.socket_path))
    async with aiohttp.ClientSession("http://robot", connector=connector) as client:
        login = await (await client.post("/session", json={"login": "anna", "password": PASSWORD})).json()
        assert login["expires_in_s"] == 600
        other = await (await client.post("/session", json={"login": "anna", "password": PASSWORD})).json()
        assert (await client.delete("/session", headers=bearer(other["token"]))).status == 200
        now[0] += 599
        api.sessions.expire()  # as a sweep would: nothing is idle long enough yet
        assert [e for e in events(robot, "session") if e["id"] == login["id"] and e["state"] == "ended"] == []
        now[0] += 1
        # nobody asks the API anything: its sweep ends the session and says so
        await eventually(
            lambda: {"id": login["id"], "state": "ended", "reason": "idle"} in events(robot, "session"),
            "the idle session ended",
        )
        assert {"id": other["id"], "state": "ended", "reason": "logged out"} in events(robot, "session")
        assert (await client.get("/session", headers=bearer(login["token"]))).status == 401
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)


async def _nothing() -> None:
    return None


# -- faces ---------------------------------------------------------------------------------------------------


async def test_faces_are_listed_per_passenger_and_source_to_whoever_holds_faces(
    tmp_path: Path, robot: Robot
) -> None:
    create_face_key(tmp_path / "faces.key")
    key = load_face_key(tmp_path / "faces.key")
    first, second = uuid.uuid4(), uuid.uuid4()
    early = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC)
    vector = np.ones(128, np.float32) / np.sqrt(128)
    with robot.store.begin() as conn:
        for at, user, source in [
            (early, first, "local"),
            (early + dt.timedelta(minutes=1), first, "local"),
            (early + dt.timedelta(minutes=2), first, "cloud"),
            (early + dt.timedelta(minutes=3), second, "cloud"),
        ]:
            records.add_face(conn, key, user, "sface", vector, source=source, at=at)
    add_engineer(robot.store, "faces", Privilege.FACES)
    add_engineer(robot.store, "seller", ALL & ~Privilege.FACES)
    assert (await robot.client.get("/faces")).status == 401
    refused = await robot.client.get("/faces", headers=bearer(await robot.token("seller")))
    assert refused.status == 403
    assert await refused.json() == {"detail": "faces needs the FACES privilege, which seller lacks"}
    answer = await robot.client.get("/faces", headers=bearer(await robot.token("faces")))
    assert answer.status == 200
    text = await answer.text()
    assert json.loads(text) == {
        "faces": [
            {
                "user_id": str(second),
                "source": "cloud",
                "count": 1,
                "enrolled_at": "2026-05-01T09:03:00+00:00",
            },
            {
                "user_id": str(first),
                "source": "cloud",
                "count": 1,
                "enrolled_at": "2026-05-01T09:02:00+00:00",
            },
            {
                "user_id": str(first),
                "source": "local",
                "count": 2,
                "enrolled_at": "2026-05-01T09:01:00+00:00",
            },
        ],
        "total": 4,
    }
    assert "embedding" not in text


def camera_on(folder: Path, frames: list[np.ndarray[Any, Any]]) -> Camera:
    """A camera over a looping folder of these frames (PNG, 640x480), started."""
    folder.mkdir()
    for n, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"frame_{n:03}.png"), frame)
    raw = {"source": {"type": "folder", "path": folder.name, "loop": True}, "width": 640, "height": 480}
    section = CameraSection.model_validate_json(
        json.dumps({**raw, "fps": 10}), strict=True, context={"base_dir": folder.parent}
    )
    camera = Camera(section)
    camera.start()
    return camera


@pytest.fixture
async def faces_on_camera(tmp_path: Path, robot: Robot) -> AsyncIterator[tuple[Matcher, list[FrameFanout]]]:
    """The robot's faces (a real pipeline and matcher) with two cameras to choose from: one that shows no
    face or two at once, one that shows one passenger."""
    choice = PipelineChoice()
    create_face_key(tmp_path / "faces.key")
    matcher = Matcher(
        robot.store, load_face_key(tmp_path / "faces.key"), choice.spec, tmp_path / "faces.hnsw"
    )
    blank = np.full((480, 640, 3), GREY, np.uint8)
    cameras = [
        camera_on(tmp_path / "nobody", [blank, two_people_frame("obama.jpg", "biden.jpg")]),
        camera_on(tmp_path / "obama", [portrait_frame("obama.jpg"), portrait_frame("obama2.jpg")]),
    ]
    fanouts = [FrameFanout(camera) for camera in cameras]
    running = [asyncio.create_task(fanout.run()) for fanout in fanouts]
    with choice.build(model_bytes) as pipeline:
        robot.api._faces = MatcherFaces(pipeline, matcher)
        yield matcher, fanouts
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    for camera in cameras:
        await asyncio.to_thread(camera.stop)


async def test_faces_are_enrolled_from_the_camera_frame_by_frame_with_plain_reasons(
    robot: Robot, faces_on_camera: tuple[Matcher, list[FrameFanout]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    matcher, (nobody, obama) = faces_on_camera
    faces = robot.api._faces
    assert isinstance(faces, MatcherFaces)
    add_engineer(robot.store, "anna", Privilege.FACES)
    headers = bearer(await robot.token("anna"))
    user = uuid.uuid4()

    # no camera given to the faces: refused, saying why
    off = await robot.client.post(f"/actions/faces/{user}/capture", json={"timeout_s": 1}, headers=headers)
    assert off.status == 503
    assert "the camera is not running" in (await off.json())["detail"]
    bad = await robot.client.post(f"/actions/faces/{user}/capture", json={"count": 11}, headers=headers)
    assert bad.status == 422

    # a camera that shows nobody, or two people: each frame refused in plain words, nothing enrolled
    faces._frames = nobody
    await eventually(lambda: nobody.camera.stats().captured > 0, "the first frame", 10)
    refused = await robot.client.post(
        f"/actions/faces/{user}/capture", json={"count": 1, "timeout_s": 2}, headers=headers
    )
    assert refused.status == 200, await refused.text()
    results = (await refused.json())["results"]
    assert results
    assert {(r["reason"], r["result"]) for r in results} <= {
        ("no_face", "no face in view"),
        ("several_faces", "more than one face in view"),
    }
    assert [r["frame"] for r in results] == list(range(len(results)))
    progress = [e for e in events(robot, "enrolment")]
    assert [(e["done"], e["of"], e["frame"]) for e in progress] == [(0, 1, n) for n in range(len(results))]
    assert [e["result"] for e in progress] == [r["result"] for r in results]
    assert len(matcher) == 0

    # one passenger in view: two faces enrolled, one after the other
    faces._frames = obama
    await eventually(lambda: obama.camera.stats().captured > 0, "the first frame", 10)
    enrolled = await robot.client.post(
        f"/actions/faces/{user}/capture", json={"count": 2, "timeout_s": 60}, headers=headers
    )
    assert enrolled.status == 200, await enrolled.text()
    body = await enrolled.json()
    accepted = [r for r in body["results"] if r["result"] == "enrolled"]
    assert len(accepted) == 2
    with robot.store.connect() as conn:
        assert {str(row.id) for row in records.list_faces(conn, user)} == {r["face_id"] for r in accepted}
    assert len(matcher) == 2
    progress = [e for e in events(robot, "enrolment")][len(results) :]
    assert [e["done"] for e in progress if e["result"] == "enrolled"] == [1, 2]
    assert all(e["user_id"] == str(user) and e["of"] == 2 for e in progress)
    assert all(set(e) == {"user_id", "done", "of", "frame", "result", "reason"} for e in progress)
    listed = await (await robot.client.get("/faces", headers=headers)).json()
    assert [(f["user_id"], f["source"], f["count"]) for f in listed["faces"]] == [(str(user), "local", 2)]

    trail = [d for a, d in audited(robot) if a == "face.capture"]
    assert trail[0].startswith("refused: the camera is not running")
    assert trail[1] == "refused: invalid input"
    assert trail[2].startswith("done: 0 of 1 faces enrolled from")
    assert trail[3].startswith("done: 2 of 2 faces enrolled from")
    # nothing biometric anywhere: no vector in an event, the answer or a log line
    for text in (caplog.text, json.dumps([e.as_json() for e in robot.live.recent()]), json.dumps(body)):
        assert "embedding" not in text
        assert "[0." not in text
        assert "[-0." not in text


# -- the catalogue and the sync ----------------------------------------------------------------------------


async def test_the_catalogue_is_the_stores_serving_the_robots_train(robot: Robot) -> None:
    other_store, kiosk_item = uuid.uuid4(), uuid.uuid4()
    with robot.store.begin() as conn:
        conn.execute(
            insert(TABLES["stores"]).values(
                id=other_store, name="Kiosk", description="", logo_url="", store_type="SHOP", sync_scope="all"
            )
        )
        conn.execute(
            insert(TABLES["store_items"]).values(
                id=kiosk_item,
                store_id=other_store,
                name="Water",
                description="",
                price_penny=50,
                sync_scope="all",
            )
        )
        conn.execute(
            insert(TABLES["train_stores"]),
            [
                {
                    "id": uuid.uuid4(),
                    "store_id": STORE_ID,
                    "train_number": 742,
                    "train_date": dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
                    "sync_scope": "train:742",
                },
                {
                    "id": uuid.uuid4(),
                    "store_id": other_store,
                    "train_number": 999,  # another train's store
                    "train_date": dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
                    "sync_scope": "train:999",
                },
            ],
        )
    add_engineer(robot.store, "sam", Privilege.SALES)
    add_engineer(robot.store, "gate", Privilege.GATE)
    assert (await robot.client.get("/catalogue")).status == 401
    assert (await robot.client.get("/catalogue", headers=bearer(await robot.token("gate")))).status == 403
    answer = await robot.client.get("/catalogue", headers=bearer(await robot.token("sam")))
    assert answer.status == 200
    assert await answer.json() == {
        "train_number": 742,
        "stores": [
            {
                "id": str(STORE_ID),
                "name": "Buffet",
                "items": [{"id": str(base.ITEM_ID), "name": "Tea", "price_penny": 100, "balance": 3}],
            }
        ],
    }


async def test_the_sync_state_needs_no_session(robot: Robot) -> None:
    empty = await (await robot.client.get("/sync")).json()
    assert empty == {
        "online": False,
        "outbox": {"depth": 0, "in_flight": 0, "oldest_age_s": None, "last_ack_at": None},
        "cursors": [],
        "dead_letters": [],
        "dead_letters_total": 0,
    }
    add_engineer(robot.store, "anna", ALL)
    await robot.token("anna")  # its login is audited: one event in the outbox
    made = dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC)
    made_ms = int(made.timestamp() * 1000)
    with robot.store.begin() as conn:
        replica.set_cursor(conn, "train:742", 9001)
        replica.set_cursor(conn, "all", 120)
        conn.execute(
            insert(TABLES["rejected_events"]).values(
                seq=7,
                id=uuid.uuid4(),
                type="purchase",
                wall_ms=made_ms,
                data=b"\xa0",
                batch=uuid.uuid4(),
                reason="unknown store",
            )
        )
    robot.api._sync_link = lambda: SyncLink(True, made_ms + 1000, {"train:742": made_ms + 2000})
    state = await (await robot.client.get("/sync")).json()
    assert state["online"] is True
    assert state["outbox"]["depth"] == 1
    assert state["outbox"]["in_flight"] == 0
    assert state["outbox"]["oldest_age_s"] >= 0
    assert state["outbox"]["last_ack_at"] == "2026-05-01T10:00:01+00:00"
    assert state["cursors"] == [
        {"scope": "all", "cursor": 120, "at": None},
        {"scope": "train:742", "cursor": 9001, "at": "2026-05-01T10:00:02+00:00"},
    ]
    assert state["dead_letters"] == [
        {"seq": 7, "type": "purchase", "reason": "unknown store", "at": "2026-05-01T10:00:00+00:00"}
    ]
    assert state["dead_letters_total"] == 1


# -- what is published and logged, and the document --------------------------------------------------------


async def test_no_token_card_uid_or_password_in_a_log_line_or_an_event(
    robot: Robot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = LiveLogHandler(robot.live)
    logging.getLogger().addHandler(handler)
    try:
        add_engineer(robot.store, "anna", ALL, card=CARD)
        card = await card_login(robot, CARD)
        headers = bearer(card["token"])
        await robot.client.post("/session/step-up", json={"password": "a wrong secret"}, headers=headers)
        await robot.client.post("/session/step-up", json={"password": PASSWORD}, headers=headers)
        password_token = await robot.token("anna")
        await robot.client.delete("/session", headers=bearer(password_token))
        robot.now[0] += CARD_REPEAT_S
        robot.sim.tap_card(0, CARD)
        await eventually(
            lambda: (
                {"id": card["id"], "state": "ended", "reason": "card tapped again"}
                in events(robot, "session")
            ),
            "the card's session ended",
        )
    finally:
        logging.getLogger().removeHandler(handler)
    logs = events(robot, "log")
    assert any(e["part"] == "api" and "step" in e["message"] for e in logs)
    live = json.dumps([e.as_json() for e in robot.live.recent()])
    audit = json.dumps(outbox_events(robot.store, "engineer_action"), default=str)
    for text in (caplog.text, live, audit):
        for secret in (
            PASSWORD,
            "a wrong secret",
            card["token"],
            password_token,
            CARD.hex(),
            CARD.hex().upper(),
        ):
            assert secret not in text


async def test_the_openapi_document_has_every_route_with_its_bodies(robot: Robot) -> None:
    document = await (await robot.client.get("/openapi.json")).json()
    validate(document)
    for route in robot.api.routes:
        operation = document["paths"][route.path][route.method.lower()]
        if route.body is not None:
            assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
                route.body.__name__
            ), route.path
        if route.response is not None:
            assert "content" in operation["responses"]["200"], route.path
        if route.needs_step_up:
            assert "step-up" in operation["description"], route.path
    paths = document["paths"]
    assert {"/session/step-up", "/faces", "/catalogue", "/sync", "/actions/faces/{user_id}/capture"} <= set(
        paths
    )
    assert "security" not in paths["/sync"]["get"]
    assert paths["/faces"]["get"]["security"] == [{"session": []}]
    schemas = document["components"]["schemas"]
    assert {"id", "stepped_up"} <= set(schemas["SessionOut"]["properties"])
    assert "step_up" in schemas["ErrorBody"]["properties"]
    capture = paths["/actions/faces/{user_id}/capture"]["post"]["requestBody"]["content"]["application/json"]
    body = schemas[capture["schema"]["$ref"].rsplit("/", 1)[1]]
    assert (body["properties"]["count"]["maximum"], body["properties"]["timeout_s"]["maximum"]) == (10, 60)
