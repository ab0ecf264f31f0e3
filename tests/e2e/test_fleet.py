"""The fleet as it runs: `cloud-sync serve --mqtt` (APIs, ingest and down-sync in one process) and
`robot-agent run`, over a real Mosquitto with passwords and the fleet's ACL. What the robot sells reaches the
cloud's database; a ticket issued and then revoked through the Base API reaches the robot's database; both
stop cleanly on SIGTERM."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import uuid
from pathlib import Path

from sqlalchemy import select

from cloud_sync.db.database import create_engine, session_factory
from cloud_sync.db.tables import RobotAssignment, Role
from cloud_sync.web.auth import create_token
from models.sync_changes import REPLICATED
from robot_agent.identity import create_key_file
from robot_agent.store import replica
from robot_agent.store.database import open_store
from robot_agent.sync.downsync import ASK_MAX_WAIT_S
from tests.conftest import MosquittoFactory
from tests.e2e.test_robot_agent_faults import BIN, start_agent, write_robot_toml
from tests.e2e.test_sync_faults import stored_purchases, until_stored
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT
from tests.support.http import request
from tests.support.ports import accepts_connections, free_port
from tests.support.sync import make_purchases, seed_cloud
from tests.support.tasks import eventually

PURCHASES = 60


def start_cloud(
    db_url: str, broker_url: str, tmp_path: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    """`cloud-sync serve --mqtt` with a fresh signing key, as the broker's cloud user."""
    keys = ["--db", db_url, "--keys-dir", str(tmp_path / "keys")]
    subprocess.run([str(BIN / "cloud-sync"), "keys", "rotate", *keys], check=True, capture_output=True)
    credentials = tmp_path / "cloud-credentials"
    credentials.write_text(f"cloud:{PASSWORDS['cloud']}\n")
    os.chmod(credentials, 0o600)
    command = [str(BIN / "cloud-sync"), "serve", *keys, "--port", str(port), "--mqtt", broker_url]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, "--credentials", str(credentials), "--client-id", "cloud-test"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def robot_has(db: Path, table: str, key: str) -> bool:
    store = open_store(db)
    try:
        t = replica.table(table)
        column = t.c[REPLICATED[table].key]
        with store.connect() as conn:
            return conn.execute(select(column).where(column == uuid.UUID(key))).first() is not None
    finally:
        store.dispose()


async def test_the_fleet_syncs_both_ways_through_one_cloud_process(
    cloud_db_url: str,
    mosquitto_factory: MosquittoFactory,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    key = create_key_file(tmp_path / "robot.key")
    store_id, item_id = await seed_cloud(cloud_db_url, ROBOT, key)
    engine = create_engine(cloud_db_url)
    async with session_factory(engine)() as session:
        session.add(
            RobotAssignment(robot_id=ROBOT, train_number=742, train_date=dt.datetime.now(dt.UTC).date())
        )
        token = await create_token(session, Role.ADMIN)
        await session.commit()
    await engine.dispose()

    cloud_log = tmp_path / "cloud.log"
    port = free_port()
    cloud = start_cloud(cloud_db_url, broker.url, tmp_path, port, cloud_log)
    processes.append(cloud)
    await eventually(
        lambda: accepts_connections("127.0.0.1", port) or cloud.poll() is not None, "cloud-sync serve up", 30
    )
    assert cloud.poll() is None, cloud_log.read_text()

    robot_db = tmp_path / "robot.db"
    agent = start_agent(write_robot_toml(tmp_path, broker), tmp_path / "agent.log")
    processes.append(agent)
    sold = make_purchases(open_store(robot_db), store_id, item_id, PURCHASES)
    await until_stored(cloud_db_url, PURCHASES)
    assert await stored_purchases(cloud_db_url) == (set(sold), PURCHASES), (
        "every purchase made on the robot, once"
    )

    user = request(port, "POST", "/base_api/admin/user", token, {"name": "Anna"})
    departure = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    ticket = request(
        port,
        "POST",
        "/base_api/admin/ticket",
        token,
        {
            "user_id": user["id"],
            "train_number": 742,
            "wagon_number": 3,
            "place_number": 17,
            "date": departure,
            "station_id": "MSK",
            "destination_id": "SPB",
            "start_date": departure,
        },
    )
    await eventually(
        lambda: robot_has(robot_db, "tickets", ticket["id"]),
        "the ticket on the robot",
        30,
        poll_s=0.2,
        in_thread=True,
    )
    assert robot_has(robot_db, "users", user["id"])
    request(port, "POST", f"/base_api/admin/ticket/{ticket['id']}/revoke", token, {"reason": "refunded"})
    await eventually(
        lambda: robot_has(robot_db, "ticket_revocations", ticket["id"]),
        "the revocation on the robot",
        30,
        poll_s=0.2,
        in_thread=True,
    )

    for process in (agent, cloud):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, (tmp_path / "agent.log").read_text() + cloud_log.read_text()


def robot_count(db: Path, table: str) -> int:
    store = open_store(db)
    try:
        with store.connect() as conn:
            return replica.count(conn, table)
    finally:
        store.dispose()


async def test_a_robot_started_before_the_cloud_gets_its_keys_and_tickets_once_the_cloud_is_up(
    cloud_db_url: str,
    mosquitto_factory: MosquittoFactory,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """Issue 13, item 6: the agent's first request goes to a broker where nobody listens on up/sync and is
    dropped; it asks again until answered, so it holds the cloud's signing key and its train's ticket within
    ASK_MAX_WAIT_S of the cloud coming up (before: still nothing 90 s later)."""
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    key = create_key_file(tmp_path / "robot.key")
    await seed_cloud(cloud_db_url, ROBOT, key)
    engine = create_engine(cloud_db_url)
    async with session_factory(engine)() as session:
        session.add(
            RobotAssignment(robot_id=ROBOT, train_number=742, train_date=dt.datetime.now(dt.UTC).date())
        )
        token = await create_token(session, Role.ADMIN)
        await session.commit()
    await engine.dispose()

    agent_log = tmp_path / "agent.log"
    agent = start_agent(write_robot_toml(tmp_path, broker), agent_log)
    processes.append(agent)
    await eventually(
        lambda: (
            "down-sync asked for changes after nothing" in agent_log.read_text() or agent.poll() is not None
        ),
        "the agent's first request",
        30,
        poll_s=0.1,
    )
    assert agent.poll() is None, agent_log.read_text()

    cloud_log = tmp_path / "cloud.log"
    port = free_port()
    processes.append(start_cloud(cloud_db_url, broker.url, tmp_path, port, cloud_log))
    await eventually(lambda: accepts_connections("127.0.0.1", port), "cloud-sync serve up", 30)
    user = request(port, "POST", "/base_api/admin/user", token, {"name": "Anna"})
    departure = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    body = {"user_id": user["id"], "train_number": 742, "wagon_number": 3, "place_number": 17}
    body |= {"date": departure, "station_id": "MSK", "destination_id": "SPB", "start_date": departure}
    request(port, "POST", "/base_api/admin/ticket", token, body)
    robot_db = tmp_path / "robot.db"
    await eventually(
        lambda: robot_count(robot_db, "signing_keys") == 1 and robot_count(robot_db, "tickets") == 1,
        "the signing key and the ticket on the robot",
        ASK_MAX_WAIT_S + 10,
        poll_s=0.2,
        in_thread=True,
    )
    assert "down-sync answered request=" in agent_log.read_text()
