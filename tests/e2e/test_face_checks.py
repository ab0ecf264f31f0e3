"""A passenger's ticket checked by their face, as the fleet runs: `cloud-sync serve --mqtt` issues the ticket,
the passenger is enrolled from one photo through the Face Server, `robot-agent run` gets the ticket, its
token and the sealed face by down-sync, the broker goes away, and the robot's image-folder camera shows
another photo of the passenger, then a stranger: offline, the robot records one valid `ticket.checked` with
method `face`, none for the stranger; once the broker is back the cloud has the check and the ticket is
used."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
from sqlalchemy import select

from cloud_sync.db.database import create_engine, session_factory
from cloud_sync.db.tables import CLOUD_METADATA, RobotAssignment, Role
from cloud_sync.web.auth import create_token
from models.base_server import BASE_METADATA
from robot_agent.identity import create_key_file
from tests.conftest import MosquittoFactory
from tests.e2e.test_fleet import robot_has, start_cloud
from tests.e2e.test_robot_agent_faults import BIN, log_of, start_agent, write_robot_toml
from tests.e2e.test_ticket_scanning import checks
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT
from tests.support.cloud import migrated
from tests.support.face_files import MODELS_DIR, face_photo
from tests.support.face_frames import GREY, portrait_frame
from tests.support.http import request
from tests.support.ports import accepts_connections, free_port
from tests.support.sync import seed_cloud
from tests.support.tasks import eventually


def robot_folder(tmp_path: Path, broker_url_toml: Path, frames: Path) -> Path:
    """The fleet tests' robot.toml with a folder camera at 10 fps, QR scanning and face matching on."""
    text = broker_url_toml.read_text()
    text = text.replace(
        '[camera.source]\ntype = "device"\n',
        f'[camera]\nfps = 10.0\n\n[camera.source]\ntype = "folder"\npath = "{frames}"\nloop = false\n'
        'pattern = "*/*.png"\n',
    )
    text = text.replace("[tickets]\nscan = false\n", "[tickets]\ndebounce_s = 1.0\n")
    text += (
        f'\n[vision]\nmatch_faces = true\nmodels_dir = "{MODELS_DIR}"\nface_key_file = "faces.key"\n'
        'index_file = "faces.hnsw"\n'
    )
    broker_url_toml.write_text(text)
    return broker_url_toml


def robot_agent(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "robot-agent"), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def cloud_checks(db_url: str) -> list[dict[str, Any]]:
    applied = CLOUD_METADATA.tables["sync_applied_events"]
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(applied.c.data).where(applied.c.type == "ticket.checked"))).all()
    await engine.dispose()
    return [json.loads(row.data) if isinstance(row.data, str) else row.data for row in rows]


async def cloud_ticket_used(db_url: str, ticket_id: str) -> bool:
    tickets = BASE_METADATA.tables["tickets"]
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        used = (
            await conn.execute(select(tickets.c.used).where(tickets.c.id == uuid.UUID(ticket_id)))
        ).scalar()
    await engine.dispose()
    return bool(used)


async def test_an_enrolled_passenger_s_ticket_is_checked_by_face_offline_and_reaches_the_cloud(
    mosquitto_factory: MosquittoFactory, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    # The cloud's database is not what this test is about: SQLite only (the fleet tests run both).
    db_url = migrated(f"sqlite:///{tmp_path / 'cloud.db'}")
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    await seed_cloud(db_url, ROBOT, create_key_file(tmp_path / "robot.key"))
    today = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    engine = create_engine(db_url)
    async with session_factory(engine)() as session:
        session.add(RobotAssignment(robot_id=ROBOT, train_number=742, train_date=today.date()))
        token = await create_token(session, Role.ADMIN)
        await session.commit()
    await engine.dispose()
    port = free_port()
    cloud_log = tmp_path / "cloud.log"
    cloud = start_cloud(db_url, broker.url, tmp_path, port, cloud_log)
    processes.append(cloud)

    # The camera's folder: empty (the camera retries) until the robot is offline, when a folder holding every
    # frame is moved into it whole (its pattern looks one level down), so that the camera never opens half.
    frames = tmp_path / "frames"
    frames.mkdir()
    config = robot_folder(tmp_path, write_robot_toml(tmp_path, broker), frames)
    assert robot_agent(config, "keys", "init").returncode == 0
    await eventually(
        lambda: accepts_connections("127.0.0.1", port) or cloud.poll() is not None, "cloud-sync serve up", 30
    )
    assert cloud.poll() is None, log_of(cloud_log)
    user = request(port, "POST", "/base_api/admin/user", token, {"name": "Barack"})
    body = {"user_id": user["id"], "train_number": 742, "wagon_number": 3, "place_number": 17}
    body |= {"date": today.isoformat(), "station_id": "MSK", "destination_id": "SPB"}
    ticket = request(port, "POST", "/base_api/admin/ticket", token, body | {"start_date": today.isoformat()})

    # Enrolled in the cloud from one photo; the face comes down to the robot with the ticket and its token.
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("image", face_photo("obama.jpg"), filename="obama.jpg", content_type="image/jpeg")
        async with http.post(
            f"http://127.0.0.1:{port}/base_api/admin/user/{user['id']}/face",
            data=form,
            headers={"Authorization": f"Bearer {token}"},
        ) as answer:
            enrolled = await answer.json()
    assert enrolled["accepted"] == 1, enrolled
    agent_log = tmp_path / "agent.log"
    agent = start_agent(config, agent_log)
    processes.append(agent)
    robot_db = tmp_path / "robot.db"
    await eventually(
        lambda: "enrolled faces refreshed added=" in log_of(agent_log) or agent.poll() is not None,
        "the passenger's face on the robot, matched",
        30,
        poll_s=0.2,
        in_thread=True,
    )
    assert agent.poll() is None, log_of(agent_log)
    assert robot_has(robot_db, "tickets", ticket["id"])
    assert robot_has(robot_db, "ticket_tokens", ticket["id"])

    broker.stop()
    # Offline: the passenger (another photo) for 0.5 s, nobody for 1.5 s (past the debounce), a stranger.
    shown = tmp_path / "frames.tmp"
    shown.mkdir()
    nobody = np.full((480, 640, 3), GREY, np.uint8)
    sequence = [portrait_frame("obama2.jpg")] * 5 + [nobody] * 15 + [portrait_frame("biden.jpg")] * 5
    for n, image in enumerate(sequence):
        assert cv2.imwrite(str(shown / f"frame_{n:03d}.png"), image)
    shown.rename(frames / "shown")
    await eventually(lambda: "face matching stops" in log_of(agent_log), "the camera's folder to end", 60)
    [(counts)] = re.findall(r"face matching stops (frames=.*)", log_of(agent_log))
    stats = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
    assert stats["matched"] >= 1, counts
    assert stats["unknown"] >= 1, counts  # the stranger was seen, and named nobody
    assert (stats["checks"], stats["valid"]) == (1, 1), counts
    recorded = checks(robot_db)
    assert [(c["ticket_id"], c["verdict"], c["method"]) for c in recorded] == [
        (uuid.UUID(ticket["id"]), "valid", "face")
    ]

    broker.start()
    deadline = asyncio.get_running_loop().time() + 30
    while not await cloud_ticket_used(db_url, ticket["id"]):
        assert asyncio.get_running_loop().time() < deadline, "the check not in the cloud within 30 s"
        await asyncio.sleep(0.2)
    [seen] = await cloud_checks(db_url)
    assert (seen["ticket_id"], seen["verdict"], seen["method"]) == (ticket["id"], "valid", "face")
    for process in (agent, cloud):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log_of(agent_log) + log_of(cloud_log)
    assert "Traceback" not in log_of(agent_log)
    assert user["id"] not in log_of(agent_log)
