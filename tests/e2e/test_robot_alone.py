"""The robot alone, as it runs in a train (issue 16, Done when): `robot-agent run` driving the MCU simulator
on a real pty, a folder camera, `cloud-sync serve --mqtt` and a real Mosquitto, all separate processes.

- A passenger shows a valid ticket's QR code, then someone shows a forged one (the real ticket's signature
  under changed claims): the simulated gate pulses once, the lights go green then red (what the simulator's
  board executed), the buzzer sounds for the forgery, and the cloud ends with both checks recorded.
- A passenger boards (their ticket shown, the gate pulsed); an engineer with the SALES privilege places their
  order over the local API socket while the broker is down; once it is back the order lands, its task comes
  down, the store marks it ready through the Store API, and when the passenger shows their ticket again the
  robot unlocks the order's compartment on the board (the gate stays shut), says so on the live event stream
  and sends the delivery (`task_update`) to the cloud.

The camera loops over the folder's `*/*.png`: a scene without a code, and a sub-folder of frames moved in
whole while a code is shown (a code held up), moved out when it is taken away."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
from sqlalchemy import select
from zlib_ng import zlib_ng

from cloud_sync.db.database import create_engine, session_factory
from cloud_sync.db.tables import CLOUD_METADATA, RobotAssignment, Role
from cloud_sync.web.auth import create_token
from firmware_bridge.schema import LightPattern
from models.base45 import base45_encode
from models.cose import cose_sign1
from models.privileges import Privilege
from models.store_server import STORE_METADATA
from models.ticket_claims import claims_to_cbor, decode_claims
from models.ticket_codec import PREFIX, decode_envelope
from robot_agent.identity import create_key_file
from robot_agent.store import replica
from robot_agent.store.database import open_store
from tests.conftest import MosquittoFactory
from tests.e2e.test_face_checks import cloud_checks
from tests.e2e.test_fleet import robot_has, start_cloud
from tests.e2e.test_robot_agent_faults import log_of, start_agent, write_robot_toml
from tests.e2e.test_robot_supervision import point
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT
from tests.support.cloud import migrated
from tests.support.http import request
from tests.support.mosquitto import MosquittoBroker
from tests.support.ports import accepts_connections, free_port
from tests.support.qr_images import render_qr
from tests.support.simulator import Simulator
from tests.support.sync import seed_cloud
from tests.support.tasks import eventually

WITHIN_S = 30.0  # generous: the machine is shared; what is asserted is the outcome, not the time
FRAMES_A_SHOWING = 10


@dataclass
class Rig:
    """The processes of one robot and its cloud, and what the tests need to reach them."""

    db_url: str
    port: int  # cloud-sync's HTTP port
    admin: str  # an admin token of the cloud
    store_token: str
    store_id: uuid.UUID
    item_id: uuid.UUID
    broker: MosquittoBroker
    simulator: Simulator
    frames: Path  # the camera's folder
    socket_path: Path  # the agent's local API
    robot_db: Path
    cloud: subprocess.Popen[bytes]
    cloud_log: Path
    agent: subprocess.Popen[bytes] | None = None
    agent_log: Path | None = None

    def logs(self) -> str:
        agent = log_of(self.agent_log) if self.agent_log is not None else ""
        return f"agent:\n{agent}\ncloud:\n{log_of(self.cloud_log)}\nsimulator:\n{self.simulator.log()}"

    def executed(self, since: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """The commands the simulated board executed, in order."""
        return [(name, fields) for name, fields in self.simulator.state()["executed"][since:]]


def show(rig: Rig, name: str, token: str) -> Path:
    """Hold `token`'s QR code up to the camera: a folder of frames moved in whole (never seen half made)."""
    staged = rig.frames.parent / f"{name}.tmp"
    staged.mkdir()
    for n in range(FRAMES_A_SHOWING):
        assert cv2.imwrite(str(staged / f"frame_{n:03d}.png"), render_qr(token))
    shown = rig.frames / name
    staged.rename(shown)
    return shown


def take_away(rig: Rig, shown: Path) -> None:
    shown.rename(rig.frames.parent / f"{shown.name}.gone")


def forge(token: str, **changes: Any) -> str:
    """`token` with its claims changed and its issuer's key id and signature kept: what a forger can make
    from a real ticket without the signing key."""
    envelope = decode_envelope(token)
    claims = decode_claims(envelope.payload).model_copy(update=changes)
    cose = cose_sign1(envelope.protected, claims_to_cbor(claims), envelope.signature)
    return PREFIX + base45_encode(zlib_ng.compress(cose, 1))


@asynccontextmanager
async def robot_alone(
    tmp_path: Path,
    mosquitto_factory: MosquittoFactory,
    start_simulator: Callable[..., Simulator],
    processes: list[subprocess.Popen[bytes]],
) -> AsyncIterator[Rig]:
    """The cloud (SQLite: its database is not what these tests are about) and broker up, the MCU simulator on
    its pty, the robot assigned to train 742 today with a store serving it; the agent not started yet."""
    db_url = migrated(f"sqlite:///{tmp_path / 'cloud.db'}")
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    store_id, item_id = await seed_cloud(db_url, ROBOT, create_key_file(tmp_path / "robot.key"))
    today = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    engine = create_engine(db_url)
    async with session_factory(engine)() as session:
        session.add(RobotAssignment(robot_id=ROBOT, train_number=742, train_date=today.date()))
        admin = await create_token(session, Role.ADMIN)
        store_token = await create_token(session, Role.STORE, store_id=store_id)
        await session.commit()
    await engine.dispose()
    port = free_port()
    cloud_log = tmp_path / "cloud.log"
    cloud = start_cloud(db_url, broker.url, tmp_path, port, cloud_log)
    processes.append(cloud)

    simulator = start_simulator()
    serial_link = tmp_path / "mcu"
    point(serial_link, simulator)
    frames = tmp_path / "frames"
    (frames / "0-scene").mkdir(parents=True)
    scene = np.full((480, 640, 3), 180, dtype=np.uint8)
    assert cv2.imwrite(str(frames / "0-scene" / "frame.png"), scene)
    socket_dir = Path(tempfile.mkdtemp(prefix="alone", dir="/tmp"))  # a unix socket's path is short
    socket_path = socket_dir / "agent.sock"
    config = write_robot_toml(tmp_path, broker)
    text = config.read_text()
    text = text.replace('backend = "simulated"', f'backend = "mcu"\nserial_url = "{serial_link}"')
    text = text.replace(
        '[camera.source]\ntype = "device"\n',
        f'[camera]\nfps = 10.0\n\n[camera.source]\ntype = "folder"\npath = "{frames}"\nloop = true\n'
        'pattern = "*/*.png"\n',
    )
    text = text.replace("[tickets]\nscan = false\n", "[tickets]\ndebounce_s = 1.0\n")
    config.write_text(text + f'\n[api]\nsocket = "{socket_path}"\n\n[behaviour]\nlanguage = "en"\n')
    await eventually(
        lambda: accepts_connections("127.0.0.1", port) or cloud.poll() is not None, "cloud-sync serve up", 30
    )
    assert cloud.poll() is None, log_of(cloud_log)
    stop = {"store_id": str(store_id), "train_number": 742, "train_date": today.isoformat()}
    request(port, "POST", "/base_api/admin/train_store", admin, stop)
    rig = Rig(
        db_url, port, admin, store_token, store_id, item_id, broker, simulator, frames, socket_path,
        tmp_path / "robot.db", cloud, cloud_log,
    )  # fmt: skip
    try:
        yield rig
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)


def issue_ticket(rig: Rig, name: str, place: int) -> dict[str, Any]:
    """A passenger of train 742 today and their ticket (with its signed token), issued by the cloud."""
    user = request(rig.port, "POST", "/base_api/admin/user", rig.admin, {"name": name})
    today = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0).isoformat()
    body = {"user_id": user["id"], "train_number": 742, "wagon_number": 3, "place_number": place}
    body |= {"date": today, "start_date": today, "station_id": "MSK", "destination_id": "SPB"}
    ticket: dict[str, Any] = request(rig.port, "POST", "/base_api/admin/ticket", rig.admin, body)
    return ticket


async def start_robot(
    rig: Rig, tmp_path: Path, processes: list[subprocess.Popen[bytes]], *rows: tuple[str, str]
) -> None:
    """`robot-agent run`, waited for until it is linked to the MCU and holds `rows` (table, key) from the
    cloud."""
    rig.agent_log = tmp_path / "agent.log"
    agent = rig.agent = start_agent(tmp_path / "robot.toml", rig.agent_log)
    processes.append(agent)
    await eventually(
        lambda: all(robot_has(rig.robot_db, table, key) for table, key in rows) or agent.poll() is not None,
        f"{rows} down on the robot",
        WITHIN_S,
        poll_s=0.2,
        in_thread=True,
    )
    await eventually(
        lambda: "MCU linked" in log_of(tmp_path / "agent.log") or agent.poll() is not None,
        "the MCU linked",
        WITHIN_S,
    )
    assert agent.poll() is None, rig.logs()


async def stop_all(rig: Rig) -> None:
    for process in (rig.agent, rig.cloud):
        assert process is not None
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0, rig.logs()
    assert "Traceback" not in rig.logs(), rig.logs()


def lights(executed: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, int, int, int]]:
    return [(f["pattern"], f["red"], f["green"], f["blue"]) for name, f in executed if name == "LIGHTS"]


GREEN = (LightPattern.SOLID, 0, 255, 0)
RED = (LightPattern.BLINK, 255, 0, 0)


async def test_a_valid_ticket_pulses_the_gate_once_and_a_forged_one_is_refused_and_both_reach_the_cloud(
    mosquitto_factory: MosquittoFactory,
    start_simulator: Callable[..., Simulator],
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    async with robot_alone(tmp_path, mosquitto_factory, start_simulator, processes) as rig:
        ticket = issue_ticket(rig, "Barack", 17)
        await start_robot(rig, tmp_path, processes, ("ticket_tokens", ticket["id"]))
        before = len(rig.executed())

        valid = show(rig, "1-valid", ticket["token"])
        await eventually(
            lambda: GREEN in lights(rig.executed(before)), "the lights green", WITHIN_S, poll_s=0.1
        )
        take_away(rig, valid)
        forged = forge(ticket["token"], ticket_id=uuid.uuid4(), place_number=18)
        assert (
            decode_envelope(forged).kid == decode_envelope(ticket["token"]).kid
        )  # the issuer's key, claimed
        show(rig, "2-forged", forged)
        await eventually(lambda: RED in lights(rig.executed(before)), "the lights red", WITHIN_S, poll_s=0.1)

        checks = []
        deadline = asyncio.get_running_loop().time() + WITHIN_S
        while len(checks := await cloud_checks(rig.db_url)) < 2:
            assert asyncio.get_running_loop().time() < deadline, f"{checks} in the cloud\n{rig.logs()}"
            await asyncio.sleep(0.2)
        executed = rig.executed(before)
        await stop_all(rig)

    names = [name for name, _ in executed]
    assert names.count("GATE_PULSE") == 1, executed
    assert names.count("BUZZER") == 1, executed
    seen = lights(executed)
    assert seen.index(GREEN) < seen.index(RED), seen
    assert names.index("GATE_PULSE") < names.index("BUZZER") < len(names), executed  # let in, then refused
    assert sorted((c["verdict"], c["ticket_id"], c["method"]) for c in checks) == [
        ("bad_signature", None, "camera"),
        ("valid", ticket["id"], "camera"),
    ], checks
    assert len(await cloud_checks(rig.db_url)) == 2  # nothing doubled after the stop


def robot_task_ready(robot_db: Path, task_id: uuid.UUID) -> bool:
    store = open_store(robot_db)
    try:
        tasks = replica.table("tasks")
        with store.connect() as conn:
            return bool(conn.execute(select(tasks.c.is_ready).where(tasks.c.id == task_id)).scalar())
    finally:
        store.dispose()


async def cloud_rows(db_url: str, table: str, **where: Any) -> list[Any]:
    t = {**STORE_METADATA.tables, **CLOUD_METADATA.tables}[table]
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            query = select(t)
            for column, value in where.items():
                query = query.where(t.c[column] == value)
            return list((await conn.execute(query)).all())
    finally:
        await engine.dispose()


async def until_rows(rig: Rig, table: str, what: str, **where: Any) -> list[Any]:
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while not (rows := await cloud_rows(rig.db_url, table, **where)):
        assert asyncio.get_running_loop().time() < deadline, f"{what} not in the cloud\n{rig.logs()}"
        await asyncio.sleep(0.2)
    return rows


async def test_an_order_placed_offline_is_handed_over_from_its_compartment_once_the_cloud_marks_it_ready(
    mosquitto_factory: MosquittoFactory,
    start_simulator: Callable[..., Simulator],
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    async with robot_alone(tmp_path, mosquitto_factory, start_simulator, processes) as rig:
        ticket = issue_ticket(rig, "Barack", 17)
        sales = {"login": "sasha", "password": "correct horse", "privileges": int(Privilege.SALES)}
        engineer = request(rig.port, "POST", "/base_api/admin/engineer", rig.admin, sales)
        await start_robot(
            rig,
            tmp_path,
            processes,
            ("engineers", engineer["id"]),
            ("store_items", str(rig.item_id)),
            ("ticket_tokens", ticket["id"]),
        )
        boarded = show(rig, "1-boarding", ticket["token"])
        await eventually(
            lambda: "GATE_PULSE" in [name for name, _ in rig.executed()],
            "the gate pulsed",
            WITHIN_S,
            poll_s=0.1,
        )
        take_away(rig, boarded)

        rig.broker.stop()
        connector = aiohttp.UnixConnector(path=str(rig.socket_path))
        async with aiohttp.ClientSession(connector=connector, base_url="http://robot") as api:
            async with api.post("/session", json={"login": "sasha", "password": "correct horse"}) as answer:
                assert answer.status == 200, await answer.text()
                headers = {"Authorization": f"Bearer {(await answer.json())['token']}"}
            order = {
                "store_id": str(rig.store_id),
                "user_id": ticket["user_id"],
                "items": [{"item_id": str(rig.item_id), "count": 1}],
            }
            async with api.post("/actions/orders", json=order, headers=headers) as answer:
                assert answer.status == 200, await answer.text()
                placed = await answer.json()
            purchase_id = uuid.UUID(placed["purchase_id"])

            rig.broker.start()
            [task] = await until_rows(rig, "tasks", "the order's task", purchase_id=purchase_id)
            request(rig.port, "PUT", f"/store_api/store/task/{task.id}/ready", rig.store_token)
            await eventually(
                lambda: robot_task_ready(rig.robot_db, task.id),
                "the task ready on the robot",
                30,
                in_thread=True,
            )
            before = len(rig.executed())
            async with api.get("/events?kinds=order", timeout=aiohttp.ClientTimeout(total=60)) as stream:
                show(rig, "2-again", ticket["token"])
                # The task's own arrival ("ready") may still be published as the stream opens: read past it.
                while (event := json.loads(await stream.content.readline()))["data"]["state"] != "delivered":
                    assert event["data"]["state"] == "ready", event
            assert event["data"]["task_id"] == str(task.id)
            assert event["data"]["compartment"] == placed["compartment"] == 0

        await until_rows(rig, "sync_applied_events", "the delivery", type="task_update")
        executed = rig.executed(before)
        await stop_all(rig)

    unlocked = [fields for name, fields in executed if name == "COMPARTMENT_UNLOCK"]
    assert [f["index"] for f in unlocked] == [placed["compartment"]], executed
    assert "GATE_PULSE" not in [name for name, _ in executed], executed  # on board already: no gate
    assert GREEN in lights(executed), executed
    tasks = await cloud_rows(rig.db_url, "tasks", purchase_id=purchase_id)
    assert [t.is_ready for t in tasks] == [True], tasks
