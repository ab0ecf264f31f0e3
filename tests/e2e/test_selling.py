"""An order sold offline and handed over, as the fleet runs (issue 16, Done when): `cloud-sync serve --mqtt`
and `robot-agent run` (simulated hardware, a folder camera) on a real broker. An engineer with the SALES
privilege, made in the cloud and synced down, logs in on the agent's local API socket by password and places
a passenger's order while the broker is down; once it is back the order lands, its task comes down to the
robot, the store marks it ready through the Store API, and when the passenger shows their ticket at the
camera the robot opens the order's compartment: seen on the agent's live event stream ("order" delivered),
and the delivery's `task_update` reaches the cloud."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import cv2
from sqlalchemy import select

from cloud_sync.db.database import create_engine, session_factory
from cloud_sync.db.tables import CLOUD_METADATA, RobotAssignment, Role
from cloud_sync.web.auth import create_token
from models.privileges import Privilege
from models.store_server import STORE_METADATA
from robot_agent.identity import create_key_file
from robot_agent.store import replica
from robot_agent.store.database import open_store
from tests.conftest import MosquittoFactory
from tests.e2e.test_face_checks import robot_folder
from tests.e2e.test_fleet import robot_has, start_cloud
from tests.e2e.test_robot_agent_faults import log_of, start_agent, write_robot_toml
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT
from tests.support.cloud import migrated
from tests.support.http import request
from tests.support.ports import accepts_connections, free_port
from tests.support.qr_images import render_qr
from tests.support.sync import seed_cloud
from tests.support.tasks import eventually


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


def robot_task_ready(robot_db: Path, task_id: uuid.UUID) -> bool:
    store = open_store(robot_db)
    try:
        tasks = replica.table("tasks")
        with store.connect() as conn:
            return bool(conn.execute(select(tasks.c.is_ready).where(tasks.c.id == task_id)).scalar())
    finally:
        store.dispose()


async def test_an_order_placed_offline_is_handed_over_once_the_cloud_marks_it_ready(
    mosquitto_factory: MosquittoFactory, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
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

    frames = tmp_path / "frames"
    frames.mkdir()
    config = robot_folder(tmp_path, write_robot_toml(tmp_path, broker), frames)
    text = config.read_text().replace("[vision]\nmatch_faces = true", "[vision]\nmatch_faces = false")
    socket_dir = Path(tempfile.mkdtemp(prefix="sell", dir="/tmp"))  # a unix socket's path is short
    socket_path = socket_dir / "agent.sock"
    config.write_text(text + f'\n[api]\nsocket = "{socket_path}"\n\n[behaviour]\nlanguage = "en"\n')
    await eventually(
        lambda: accepts_connections("127.0.0.1", port) or cloud.poll() is not None, "cloud-sync serve up", 30
    )
    assert cloud.poll() is None, log_of(cloud_log)
    user = request(port, "POST", "/base_api/admin/user", admin, {"name": "Barack"})
    body = {"user_id": user["id"], "train_number": 742, "wagon_number": 3, "place_number": 17}
    body |= {"date": today.isoformat(), "station_id": "MSK", "destination_id": "SPB"}
    ticket = request(port, "POST", "/base_api/admin/ticket", admin, body | {"start_date": today.isoformat()})
    stop = {"store_id": str(store_id), "train_number": 742, "train_date": today.isoformat()}
    request(port, "POST", "/base_api/admin/train_store", admin, stop)
    sales = {"login": "sasha", "password": "correct horse", "privileges": int(Privilege.SALES)}
    engineer = request(port, "POST", "/base_api/admin/engineer", admin, sales)

    agent_log = tmp_path / "agent.log"
    agent = start_agent(config, agent_log)
    processes.append(agent)
    robot_db = tmp_path / "robot.db"
    await eventually(
        lambda: (
            (
                robot_has(robot_db, "engineers", engineer["id"])
                and robot_has(robot_db, "store_items", str(item_id))
                and robot_has(robot_db, "ticket_tokens", ticket["id"])
            )
            or agent.poll() is not None
        ),
        "the engineer, the store's item and the ticket on the robot",
        30,
        poll_s=0.2,
        in_thread=True,
    )
    assert agent.poll() is None, log_of(agent_log)

    broker.stop()
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with aiohttp.ClientSession(connector=connector) as api:
        base = "http://robot"
        async with api.post(
            f"{base}/session", json={"login": "sasha", "password": "correct horse"}
        ) as answer:
            assert answer.status == 200, await answer.text()
            session_token = (await answer.json())["token"]
        headers = {"Authorization": f"Bearer {session_token}"}
        order = {
            "store_id": str(store_id),
            "user_id": user["id"],
            "items": [{"item_id": str(item_id), "count": 1}],
        }
        async with api.post(f"{base}/actions/orders", json=order, headers=headers) as answer:
            assert answer.status == 200, await answer.text()
            placed = await answer.json()
        purchase_id = uuid.UUID(placed["purchase_id"])

        broker.start()
        deadline = asyncio.get_running_loop().time() + 30
        while not (tasks := await cloud_rows(db_url, "tasks", purchase_id=purchase_id)):
            assert asyncio.get_running_loop().time() < deadline, "the order not in the cloud within 30 s"
            await asyncio.sleep(0.2)
        [task] = tasks
        request(port, "PUT", f"/store_api/store/task/{task.id}/ready", store_token)
        await eventually(
            lambda: robot_task_ready(robot_db, task.id), "the task ready on the robot", 30, in_thread=True
        )

        # The passenger shows their ticket: a folder of frames moved in whole, so the camera never opens half.
        shown = tmp_path / "frames.tmp"
        shown.mkdir()
        for n in range(10):
            assert cv2.imwrite(str(shown / f"frame_{n:03d}.png"), render_qr(ticket["token"]))
        async with api.get(f"{base}/events?kinds=order", timeout=aiohttp.ClientTimeout(total=60)) as stream:
            shown.rename(frames / "shown")
            # The task's own arrival ("ready") may still be published as the stream opens: read past it.
            while (event := json.loads(await stream.content.readline()))["data"]["state"] != "delivered":
                assert event["data"]["state"] == "ready", event
        assert event["kind"] == "order", event
        assert event["data"]["task_id"] == str(task.id)
        assert event["data"]["compartment"] == placed["compartment"] == 0

    deadline = asyncio.get_running_loop().time() + 30
    while not await cloud_rows(db_url, "sync_applied_events", type="task_update"):
        assert asyncio.get_running_loop().time() < deadline, "the delivery not in the cloud within 30 s"
        await asyncio.sleep(0.2)
    for process in (agent, cloud):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log_of(agent_log) + log_of(cloud_log)
    assert "Traceback" not in log_of(agent_log)
    shutil.rmtree(socket_dir, ignore_errors=True)
