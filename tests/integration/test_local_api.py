"""The robot's local control API, served for real on a unix socket and reached through aiohttp's
UnixConnector: privileges, lockout, card logins, the e-stop, the audit trail, the event stream, and secrets
kept out of the logs. Devices are the simulated backend; the store is a real SQLite file."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import socket
import stat
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
import pytest
from openapi_spec_validator import validate
from sqlalchemy import Engine, insert, select, update

from hardware.devices import GateState
from hardware.factory import Devices, open_devices
from hardware.sim import SimDevices
from models.card_keys import card_key
from models.faces.choice import PipelineChoice
from models.passwords import hash_password
from models.privileges import ALL, Privilege
from models.sync_changes import Change, Changes
from robot_agent.api.engineers import load_card_pepper
from robot_agent.api.faces import MatcherFaces
from robot_agent.api.logs import LiveLogHandler
from robot_agent.api.server import NOBODY, LocalApi
from robot_agent.config import load_config
from robot_agent.faces import records
from robot_agent.faces.key import create_face_key, load_face_key
from robot_agent.faces.matcher import Matcher
from robot_agent.identity import create_key_file
from robot_agent.live import LiveEvents
from robot_agent.status import RobotStatus
from robot_agent.store import replica
from robot_agent.store.database import open_store
from robot_agent.store.tables import ROBOT_METADATA
from robot_agent.tickets import TicketDesk
from tests.support.face_files import face_photo, model_bytes

ROBOT = uuid.UUID("6f1c1a9e-3d2b-4f0e-9a51-7a0b5f3c2d10")
TABLES = ROBOT_METADATA.tables
PEPPER = bytes(range(32))
CARD = bytes.fromhex("04a1b2c3d4e5f6")
STRANGE_CARD = bytes.fromhex("04ffffffffff01")
PASSWORD = "correct horse battery staple"
STORE_ID = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
ITEM_ID = uuid.UUID("00000000-0000-4000-8000-0000000000b1")


def add_engineer(store: Engine, login: str, privileges: int, card: bytes | None = None) -> uuid.UUID:
    engineer_id = uuid.uuid4()
    with store.begin() as conn:
        conn.execute(
            insert(TABLES["engineers"]).values(
                id=engineer_id,
                login=login,
                password=hash_password(PASSWORD, rounds=4),
                privileges=privileges,
                sync_scope="all",
            )
        )
        if card is not None:
            conn.execute(
                insert(TABLES["auth_cards"]).values(
                    id=uuid.uuid4(), engineer_id=engineer_id, key=card_key(PEPPER, card), sync_scope="all"
                )
            )
    return engineer_id


def outbox_events(store: Engine, type_: str) -> list[dict[str, Any]]:
    outbox = TABLES["outbox"]
    with store.connect() as conn:
        rows = conn.execute(select(outbox.c.data).where(outbox.c.type == type_).order_by(outbox.c.seq)).all()
    return [cbor2.loads(row.data) for row in rows]


@dataclass
class Robot:
    api: LocalApi
    store: Engine
    devices: Devices
    live: LiveEvents
    client: aiohttp.ClientSession
    syncs: list[int]
    server: asyncio.Task[None]
    now: list[float] = field(default_factory=lambda: [1_000.0])

    @property
    def sim(self) -> SimDevices:
        assert self.devices.simulator is not None
        return self.devices.simulator

    async def login(self, login: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        return await self.client.post("/session", json={"login": login, "password": password})

    async def token(self, login: str) -> str:
        response = await self.login(login)
        assert response.status == 200, await response.text()
        token = (await response.json())["token"]
        assert isinstance(token, str)
        return token


def write_config(directory: Path, socket: Path | str = "api.sock") -> Path:
    """The robot.toml of these tests (simulated hardware, a card pepper, card logins waiting 0.5 s); the
    socket relative to `directory` unless absolute."""
    create_key_file(directory / "robot.key")
    path = directory / "robot.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [robot]
            id = "{ROBOT}"
            key_file = "robot.key"
            [assignment]
            train_number = 742
            timezone = "Europe/Moscow"
            [cloud]
            mqtt_url = "mqtt://127.0.0.1:1883"
            [storage]
            database = "robot.db"
            [camera.source]
            type = "device"
            [hardware]
            backend = "simulated"
            [api]
            socket = "{socket}"
            card_key_file = "card-pepper"
            card_login_s = 0.5
            """
        )
    )
    return path


@pytest.fixture
async def robot(tmp_path: Path) -> AsyncIterator[Robot]:
    config = load_config(write_config(tmp_path))
    assert config.api.socket == tmp_path / "api.sock"
    pepper_file = config.api.card_key_file
    pepper_file.write_bytes(PEPPER)
    pepper_file.chmod(0o600)
    store = open_store(config.storage.database)
    with store.begin() as conn:
        conn.execute(
            insert(TABLES["stores"]).values(
                id=STORE_ID, name="Buffet", description="", logo_url="", store_type="SHOP", sync_scope="all"
            )
        )
        conn.execute(
            insert(TABLES["store_items"]).values(
                id=ITEM_ID,
                store_id=STORE_ID,
                name="Tea",
                description="",
                balance=3,
                price_penny=100,
                sync_scope="all",
            )
        )
    devices = await open_devices("simulated", None, 115200)
    live = LiveEvents()
    syncs: list[int] = []

    async def sync_now() -> None:
        syncs.append(1)

    now = [1_000.0]
    api = LocalApi(
        socket_path=config.api.socket,
        status=RobotStatus(ROBOT),
        live=live,
        store=store,
        devices=devices,
        tickets=TicketDesk(store, config),
        sync_now=sync_now,
        card_taps=devices.card_reader.taps(),
        card_pepper=load_card_pepper(pepper_file),
        card_login_s=config.api.card_login_s,
        monotonic=lambda: now[0],
    )
    server = asyncio.create_task(api.run())
    await asyncio.wait_for(api.listening.wait(), 10)
    connector = aiohttp.UnixConnector(path=str(config.api.socket))
    async with aiohttp.ClientSession("http://robot", connector=connector) as client:
        yield Robot(api, store, devices, live, client, syncs, server, now)
    server.cancel()
    await asyncio.gather(server, return_exceptions=True)
    assert not config.api.socket.exists()  # removed at exit
    await devices.close()
    store.dispose()


async def test_status_events_and_openapi_need_only_the_socket_which_is_0660(robot: Robot) -> None:
    mode = os.stat(robot.api.socket_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    status = await (await robot.client.get("/status")).json()
    assert status["robot"] == str(ROBOT)
    assert status["estop"]["pressed"] is False
    assert status["api"] == {"sessions": 0, "login_failures": 0, "logins_locked_for_s": 0}
    document = await (await robot.client.get("/openapi.json")).json()
    validate(document)  # a valid OpenAPI 3.1 document
    gate = document["paths"]["/actions/gate/pulse"]["post"]
    assert "`GATE` privilege" in gate["description"]
    assert {"403", "423"} <= set(gate["responses"])
    assert gate["security"] == [{"session": []}]
    assert "security" not in document["paths"]["/status"]["get"]
    refused = await robot.client.post("/actions/gate/pulse", json={})
    assert refused.status == 401
    assert "log in first" in (await refused.json())["detail"]


# Each action, the privilege it needs, its body, and the status it answers once allowed.
ACTIONS: list[tuple[str, str, dict[str, Any] | None, Privilege, int]] = [
    ("POST", "/actions/gate/pulse", {"ms": 5000}, Privilege.GATE, 200),
    ("POST", "/actions/lights/test", {"pattern": "solid", "green": 0}, Privilege.HARDWARE, 200),
    ("POST", "/actions/buzzer/test", {}, Privilege.HARDWARE, 200),
    ("POST", "/actions/compartments/3/open", {"ms": 5000}, Privilege.COMPARTMENTS, 200),
    ("POST", "/actions/sync", None, Privilege.SYNC, 200),
    ("POST", "/actions/tickets/verify", {"code": "not a ticket"}, Privilege.TICKETS, 200),
    (
        "POST",
        "/actions/orders",
        {
            "store_id": str(STORE_ID),
            "user_id": str(uuid.uuid4()),
            "items": [{"item_id": str(ITEM_ID), "count": 2}],
        },
        Privilege.SALES,
        200,
    ),
    (
        "POST",
        f"/actions/faces/{uuid.uuid4()}",
        {"images": ["aGVsbG8="]},
        Privilege.FACES,
        503,
    ),  # no faces here
    ("DELETE", f"/actions/faces/{uuid.uuid4()}", None, Privilege.FACES, 503),
]


async def test_each_action_needs_its_privilege_and_is_audited_either_way(robot: Robot) -> None:
    for privilege in Privilege:
        add_engineer(robot.store, f"only-{privilege.name}", privilege)
        add_engineer(robot.store, f"all-but-{privilege.name}", ALL & ~privilege)
    tokens = {
        login: await robot.token(login)
        for login in [f"{p}-{q.name}" for q in Privilege for p in ("only", "all-but")]
    }
    for method, path, body, privilege, allowed in ACTIONS:
        without = await robot.client.request(
            method,
            path,
            json=body,
            headers={"Authorization": f"Bearer {tokens[f'all-but-{privilege.name}']}"},
        )
        assert without.status == 403, path
        assert f"needs the {privilege.name} privilege" in (await without.json())["detail"]
        with_it = await robot.client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {tokens[f'only-{privilege.name}']}"}
        )
        assert with_it.status == allowed, (path, await with_it.text())
    assert robot.devices.gate.state is GateState.OPEN
    assert robot.syncs == [1]
    with robot.store.connect() as conn:
        balance = conn.execute(select(TABLES["store_items"].c.balance)).scalar_one()
    assert balance == 1
    assert [e["verdict"] for e in outbox_events(robot.store, "ticket.checked")] == ["bad_prefix"]
    assert len(outbox_events(robot.store, "purchase")) == 1
    audited = [
        (e["action"], e["detail"].split(":")[0]) for e in outbox_events(robot.store, "engineer_action")
    ]
    for method, path, _, _privilege, allowed in ACTIONS:
        name = next(r.name for r in robot.api.routes if r.method == method and _matches(r.path, path))
        assert (name, "refused") in audited
        assert (name, "done" if allowed == 200 else "refused") in audited


def _matches(pattern: str, path: str) -> bool:
    parts, wanted = pattern.split("/"), path.split("/")
    return len(parts) == len(wanted) and all(
        p == w or p.startswith("{") for p, w in zip(parts, wanted, strict=True)
    )


async def test_orders_are_listed_with_their_compartment_state_and_conflicts(robot: Robot) -> None:
    """An order placed is "placed" in its compartment until its task comes down; the task brings the
    conflicts the cloud found with the sale (issue 16, selling)."""
    add_engineer(robot.store, "sam", Privilege.SALES)
    headers = {"Authorization": f"Bearer {await robot.token('sam')}"}
    assert (await robot.client.get("/orders")).status == 401
    body = {
        "store_id": str(STORE_ID),
        "user_id": str(uuid.uuid4()),
        "items": [{"item_id": str(ITEM_ID), "count": 1}],
    }
    placed = await robot.client.post("/actions/orders", json={**body, "compartment": 4}, headers=headers)
    assert placed.status == 200
    purchase = (await placed.json())["purchase_id"]
    assert (await placed.json())["compartment"] == 4
    taken = await robot.client.post("/actions/orders", json={**body, "compartment": 4}, headers=headers)
    assert taken.status == 409
    [listed] = (await (await robot.client.get("/orders", headers=headers)).json())["orders"]
    assert (listed["purchase_id"], listed["compartment"], listed["state"]) == (purchase, 4, "placed")
    task = uuid.uuid4()
    conflict = {"kind": "oversold", "detail": f"item {ITEM_ID}: 1 sold, 0 in stock"}
    row = {
        "id": str(task),
        "store_id": str(STORE_ID),
        "user_id": body["user_id"],
        "purchase_id": purchase,
        "is_ready": False,
        "additional_data": {"robot_id": str(uuid.uuid4()), "conflicts": [conflict]},
    }
    with robot.store.begin() as conn:
        replica.apply_log(
            conn,
            Changes(f"robot:{uuid.uuid4()}", "log", 0, 1, (Change(1, "tasks", "upsert", str(task), row),)),
        )
    [listed] = (await (await robot.client.get("/orders", headers=headers)).json())["orders"]
    assert (listed["task_id"], listed["state"], listed["conflicts"]) == (str(task), "waiting", [conflict])


async def test_a_privilege_taken_away_is_gone_at_the_next_action(robot: Robot) -> None:
    engineer = add_engineer(robot.store, "anna", Privilege.GATE | Privilege.SYNC)
    headers = {"Authorization": f"Bearer {await robot.token('anna')}"}
    assert (await robot.client.post("/actions/sync", headers=headers)).status == 200
    with robot.store.begin() as conn:
        conn.execute(
            update(TABLES["engineers"]).where(TABLES["engineers"].c.id == engineer).values(privileges=0)
        )
    assert (await robot.client.post("/actions/sync", headers=headers)).status == 403


async def test_an_action_moving_hardware_is_refused_under_the_estop_and_one_that_does_not_goes_on(
    robot: Robot,
) -> None:
    engineer = add_engineer(robot.store, "anna", ALL)
    headers = {"Authorization": f"Bearer {await robot.token('anna')}"}
    robot.sim.press_estop()
    refused = await robot.client.post("/actions/gate/pulse", json={"ms": 5000}, headers=headers)
    assert refused.status == 423
    assert "e-stop is pressed" in (await refused.json())["detail"]
    assert robot.devices.gate.state is GateState.CLOSED
    assert (await robot.client.post("/actions/compartments/0/open", json={}, headers=headers)).status == 423
    assert (await robot.client.post("/actions/sync", headers=headers)).status == 200
    audited = [e for e in outbox_events(robot.store, "engineer_action") if e["action"] == "gate.pulse"]
    assert [(e["engineer_id"], e["detail"]) for e in audited] == [
        (engineer, "refused: the e-stop is pressed")
    ]
    robot.sim.release_estop()
    assert (await robot.client.post("/actions/gate/pulse", json={"ms": 5000}, headers=headers)).status == 200


async def test_five_failed_logins_lock_logins_for_five_minutes(robot: Robot) -> None:
    engineer = add_engineer(robot.store, "anna", ALL)
    for _ in range(4):
        assert (await robot.login("anna", "wrong")).status == 401
    assert (await robot.login("nobody", "wrong")).status == 401  # the fifth: an unknown login counts too
    locked = await robot.login("anna")  # the sixth, right this time
    assert locked.status == 429
    assert "locked" in (await locked.json())["detail"]
    assert locked.headers["Retry-After"] == "300"
    async with robot.client.post("/session/card") as by_card:  # cards are locked out as well
        assert by_card.status == 429
    robot.now[0] += 299
    assert (await robot.login("anna")).status == 429
    assert (await (await robot.client.get("/status")).json())["api"]["logins_locked_for_s"] == 1
    robot.now[0] += 1
    assert (await robot.login("anna")).status == 200
    audited = [
        (e["engineer_id"], e["action"], e["detail"]) for e in outbox_events(robot.store, "engineer_action")
    ]
    assert audited == [
        *[(engineer, "login.password", "failed: wrong password")] * 4,
        (NOBODY, "login.password", "failed: unknown login"),
        (NOBODY, "login.locked", "5 failed logins: locked for 300 s"),
        (engineer, "login.password", "done"),
    ]


def tap_when_waiting(robot: Robot, uid: bytes) -> asyncio.Task[None]:
    """Tap `uid` once the next card login waits for it (the live event says so)."""
    waiting = robot.live.subscribe(["card_login"])  # from now on: not an earlier login's event

    async def tap() -> None:
        async with waiting:
            async for _ in waiting:
                break
        robot.sim.tap_card(0, uid)

    return asyncio.create_task(tap())


async def test_card_login_right_card_unknown_card_and_timeout(robot: Robot) -> None:
    engineer = add_engineer(robot.store, "anna", Privilege.GATE, card=CARD)
    robot.api._card_login_s = 10.0
    tapping = tap_when_waiting(robot, CARD)
    response = await robot.client.post("/session/card")
    await tapping
    assert response.status == 200, await response.text()
    session = await response.json()
    assert (session["engineer_id"], session["via"], session["privileges"]) == (
        str(engineer),
        "card",
        ["GATE"],
    )
    assert session["stepped_up"] is False  # a card login: the gate wants the password once (step-up)
    headers = {"Authorization": f"Bearer {session['token']}"}
    refused = await robot.client.post("/actions/gate/pulse", json={}, headers=headers)
    assert (refused.status, (await refused.json())["step_up"]) == (403, True)
    stepped = await robot.client.post("/session/step-up", json={"password": PASSWORD}, headers=headers)
    assert (await stepped.json())["stepped_up"] is True
    assert (await robot.client.post("/actions/gate/pulse", json={}, headers=headers)).status == 200

    tapping = tap_when_waiting(robot, STRANGE_CARD)
    unknown = await robot.client.post("/session/card")
    await tapping
    assert unknown.status == 401
    assert robot.api.guard.failures == 1

    robot.api._card_login_s = 0.2
    timeout = await robot.client.post("/session/card")
    assert timeout.status == 408
    assert robot.api.guard.failures == 1  # nobody tapped: not a failed login

    robot.sim.tap_card(1, CARD)  # a tap nobody waits for is only an event
    async with robot.live.subscribe(["card_tap"], after=0) as taps:
        seen = [event.data async for event in _take(taps, 3)]
    assert seen == [{"reader": 0, "for": "login"}, {"reader": 0, "for": "login"}, {"reader": 1, "for": None}]
    audited = [(e["action"], e["detail"]) for e in outbox_events(robot.store, "engineer_action")]
    assert ("login.card", "done") in audited
    assert ("login.card", "failed: unknown card") in audited


async def _take(subscription: Any, count: int) -> AsyncIterator[Any]:
    n = 0
    async for event in subscription:
        yield event
        n += 1
        if n == count:
            return


async def read_events(robot: Robot, query: str, count: int) -> list[dict[str, Any]]:
    async with robot.client.get(f"/events?{query}") as response:
        assert response.status == 200
        return [json.loads(await response.content.readline()) for _ in range(count)]


async def test_the_event_stream_sends_what_is_published_and_resumes_after_a_seq(robot: Robot) -> None:
    # `after` the newest seq: whether the stream subscribes before or after the publishing, nothing is missed
    newest = robot.live.publish("behaviour", {}).seq
    async with robot.client.get(f"/events?kinds=ticket_checked,purchase&after={newest}") as stream:
        assert stream.status == 200
        assert stream.content_type == "application/x-ndjson"
        robot.live.publish("fault", {"part": "camera"})
        first = robot.live.publish("ticket_checked", {"verdict": "valid"})
        line = await asyncio.wait_for(stream.content.readline(), 10)
        assert json.loads(line) == first.as_json()
        # the stream is subscribed now: this one arrives live
        then = robot.live.publish("purchase", {"items": 1})
        line = await asyncio.wait_for(stream.content.readline(), 10)
        assert (json.loads(line)["kind"], json.loads(line)["seq"]) == ("purchase", then.seq)
    # a watcher reconnecting with the last seq it saw starts with what it missed
    resumed = await asyncio.wait_for(read_events(robot, f"after={first.seq}", 1), 10)
    assert [(e["kind"], e["seq"]) for e in resumed] == [("purchase", then.seq)]
    bad = await robot.client.get("/events?after=-1")
    assert bad.status == 422


async def test_log_lines_become_live_events_with_their_part(robot: Robot) -> None:
    """The project's lines from INFO up, each with the part it is about; other libraries' from WARNING up."""
    handler = LiveLogHandler(robot.live)
    loggers = [
        logging.getLogger(name)
        for name in ("robot_agent.vision.camera", "robot_agent.sync.sender", "aiomqtt.client")
    ]
    camera, sender, foreign = loggers
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        camera.debug("not this one")
        camera.warning("camera gone device=%s", "/dev/video0")
        sender.info("batch sent events=%d", 3)
        foreign.info("not this one either")
        foreign.warning("the broker went away")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
    logs = [e.data for e in robot.live.recent() if e.kind == "log"]
    assert logs == [
        {
            "level": "WARNING",
            "part": "camera",
            "logger": "robot_agent.vision.camera",
            "message": "camera gone device=/dev/video0",
        },
        {
            "level": "INFO",
            "part": "sync",
            "logger": "robot_agent.sync.sender",
            "message": "batch sent events=3",
        },
        {"level": "WARNING", "part": "other", "logger": "aiomqtt.client", "message": "the broker went away"},
    ]


async def test_no_password_token_or_card_uid_reaches_the_logs_or_the_audit(
    robot: Robot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    add_engineer(robot.store, "anna", ALL, card=CARD)
    await robot.login("anna", "a wrong secret")
    token = await robot.token("anna")
    robot.api._card_login_s = 10.0
    tapping = tap_when_waiting(robot, CARD)
    card_token = (await (await robot.client.post("/session/card")).json())["token"]
    await tapping
    headers = {"Authorization": f"Bearer {token}"}
    assert (await robot.client.post("/actions/gate/pulse", json={}, headers=headers)).status == 200
    await robot.client.post("/actions/tickets/verify", json={"code": "SECRETCODE"}, headers=headers)
    audit = json.dumps(outbox_events(robot.store, "engineer_action"), default=str)
    live = json.dumps([e.as_json() for e in robot.live.recent()], default=str)
    for text in (caplog.text, audit, live):
        for secret in (
            PASSWORD,
            "a wrong secret",
            token,
            card_token,
            CARD.hex(),
            CARD.hex().upper(),
            "SECRETCODE",
        ):
            assert secret not in text
    assert "engineer logged in via=card" in caplog.text


async def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path, robot: Robot) -> None:
    stale = tmp_path / "stale.sock"
    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(str(stale))
    old.close()  # the file stays, nobody listens: as after a SIGKILL
    second = _api_like(robot, stale)
    serving = asyncio.create_task(second.run())
    await asyncio.wait_for(second.listening.wait(), 10)
    assert stat.S_IMODE(os.stat(stale).st_mode) == 0o660
    again = _api_like(robot, stale)
    with pytest.raises(Exception, match="another process serves"):
        await again.run()
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    assert not stale.exists()


def _api_like(robot: Robot, path: Path, faces: MatcherFaces | None = None) -> LocalApi:
    async def nothing() -> None:
        return None

    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)  # noqa: E731
    return LocalApi(
        socket_path=path,
        status=RobotStatus(ROBOT),
        live=robot.live,
        store=robot.store,
        devices=robot.devices,
        tickets=robot.api._tickets,
        sync_now=nothing,
        faces=faces,
        wall=clock,
    )


async def test_the_api_stops_at_once_with_a_watcher_connected(robot: Robot) -> None:
    async with robot.client.get("/events?after=0") as stream:
        robot.live.publish("fault", {"part": "camera"})
        assert json.loads(await asyncio.wait_for(stream.content.readline(), 10))["kind"] == "fault"
        serving = robot.server
        serving.cancel()
        await asyncio.wait_for(asyncio.gather(serving, return_exceptions=True), 10)
        assert await asyncio.wait_for(stream.content.read(), 10) == b""  # the stream ended
    assert not robot.api.socket_path.exists()


async def test_faces_are_enrolled_through_the_quality_gate_and_deleted(tmp_path: Path, robot: Robot) -> None:
    choice = PipelineChoice()
    create_face_key(tmp_path / "faces.key")
    matcher = Matcher(
        robot.store, load_face_key(tmp_path / "faces.key"), choice.spec, tmp_path / "faces.hnsw"
    )
    with choice.build(model_bytes) as pipeline:
        api = _api_like(robot, tmp_path / "faces.sock", MatcherFaces(pipeline, matcher))
        serving = asyncio.create_task(api.run())
        await asyncio.wait_for(api.listening.wait(), 10)
        add_engineer(robot.store, "anna", Privilege.FACES)
        connector = aiohttp.UnixConnector(path=str(api.socket_path))
        async with aiohttp.ClientSession("http://robot", connector=connector) as client:
            login = await client.post("/session", json={"login": "anna", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
            user = uuid.uuid4()
            photos = [
                base64.b64encode(face_photo("obama.jpg")).decode(),
                base64.b64encode(b"no image").decode(),
            ]
            enrolled = await client.post(f"/actions/faces/{user}", json={"images": photos}, headers=headers)
            assert enrolled.status == 200, await enrolled.text()
            first, second = (await enrolled.json())["results"]
            assert set(first) == {"image", "face_id"}
            assert second["reason"] == "not_an_image"
            with robot.store.connect() as conn:
                assert [str(row.id) for row in records.list_faces(conn, user)] == [first["face_id"]]
            deleted = await client.delete(f"/actions/faces/{user}", headers=headers)
            assert (await deleted.json())["deleted"] == 1
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    audited = [(e["action"], e["detail"]) for e in outbox_events(robot.store, "engineer_action")]
    assert ("face.enrol", f"done: 1 of 2 photos enrolled for user {user}") in audited
    assert ("face.delete", f"done: 1 faces of user {user} deleted") in audited


async def test_a_watcher_that_hangs_up_on_a_quiet_stream_is_let_go(robot: Robot) -> None:
    robot.api.stream_check_s = 0.05
    robot.api.streams_ended.clear()
    async with robot.client.get("/events?kinds=nothing_ever") as stream:
        assert stream.status == 200
    # nothing is ever published to it: only the check notices the watcher is gone
    await asyncio.wait_for(robot.api.streams_ended.wait(), 10)
    assert not robot.api._streams


async def test_a_session_ends_after_ten_idle_minutes_or_at_logout(robot: Robot) -> None:
    add_engineer(robot.store, "anna", Privilege.SYNC)
    headers = {"Authorization": f"Bearer {await robot.token('anna')}"}
    robot.now[0] += 599
    shown = await robot.client.get("/session", headers=headers)  # used: renewed for 10 minutes
    assert (await shown.json())["privileges"] == ["SYNC"]
    robot.now[0] += 599
    assert (await robot.client.post("/actions/sync", headers=headers)).status == 200
    robot.now[0] += 600
    assert (await robot.client.post("/actions/sync", headers=headers)).status == 401
    headers = {"Authorization": f"Bearer {await robot.token('anna')}"}
    assert (await robot.client.delete("/session", headers=headers)).status == 200
    assert (await robot.client.get("/session", headers=headers)).status == 401
    assert (await robot.client.get("/session", headers={"Authorization": "Bearer forged"})).status == 401
