"""Enrolled faces reach the robots of their passengers' trains and leave them again (issue 15): the cloud
enrols real photos through the HTTP API on SQLite and PostgreSQL, its down-sync service and the robot's
DownSync run in this test's loop over a real Mosquitto, and the robot seals every embedding on arrival."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine, update
from sqlmodel import select

from cloud_sync.db.tables import FaceEmbedding, Role
from cloud_sync.desks.face_enrolment import FaceSettings
from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.downsync import DownSyncService
from cloud_sync.web.app import create_app
from cloud_sync.web.auth import create_token
from cloud_sync.web.context import CONTEXT
from models.sync_changes import Change, Changes, binary_text
from robot_agent.faces.arrivals import SealingSink, open_face_sink, prune_ended
from robot_agent.faces.key import FaceKeyError, create_face_key, load_face_key
from robot_agent.faces.records import add_face, list_faces, open_faces
from robot_agent.faces.sealing import FaceKey
from robot_agent.store import replica
from robot_agent.store.database import open_store
from robot_agent.sync.downsync import DownSync
from robot_agent.sync.mqtt import RobotLink
from tests.conftest import MosquittoFactory
from tests.integration.test_base_api import ticket_body
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT
from tests.support.cloud import Cloud
from tests.support.face_files import MODELS_DIR, face_photo
from tests.support.mosquitto import MosquittoBroker
from tests.support.tasks import eventually, stop

TRAIN = 742
WITHIN_S = 30


@pytest.fixture
async def cloud(cloud_db_url: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    """The cloud service enrolling with set-up's models, a signing key and an admin token."""
    app = create_app(cloud_db_url, tmp_path / "keys", faces=FaceSettings(MODELS_DIR))
    async with TestClient(TestServer(app)) as client:
        context = app[CONTEXT]
        if context.faces.unavailable is not None:
            pytest.fail(f"{context.faces.unavailable} (`make setup` fetches and builds them)", pytrace=False)
        async with context.sessions() as session:
            await context.keys.rotate(session)
            token = await create_token(session, Role.ADMIN)
        yield Cloud(client=client, admin={"Authorization": f"Bearer {token}"})


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MosquittoBroker:
    return mosquitto_factory(users=PASSWORDS, acl=ACL)


async def enrol(cloud: Cloud, user: str, *photos: str) -> list[str]:
    form = FormData()
    for name in photos:
        form.add_field("image", face_photo(name), filename=name, content_type="image/jpeg")
    answer = await cloud.ok("POST", f"/base_api/admin/user/{user}/face", data=form)
    assert answer["accepted"] == len(photos), answer
    return [image["face"]["id"] for image in answer["images"]]


async def cloud_vectors(cloud: Cloud, user: str) -> dict[uuid.UUID, bytes]:
    """{embedding id: vector bytes} of a user's faces, as the cloud keeps them."""
    async with cloud.context.sessions() as session:
        rows = await session.exec(select(FaceEmbedding).where(FaceEmbedding.user_id == uuid.UUID(user)))
        return {row.id: row.vector for row in rows}


class Robot:
    """The robot's side in this loop: its database, its link and DownSync with a face key."""

    def __init__(self, broker: MosquittoBroker, directory: Path) -> None:
        self.path = directory / "robot.db"
        self.store = open_store(self.path)
        key_file = directory / "faces.key"
        create_face_key(key_file)
        self.key = load_face_key(key_file)
        self.link = RobotLink(ROBOT, broker.url, str(ROBOT), PASSWORDS[str(ROBOT)], keepalive_s=5)
        self.down = DownSync(self.link, self.store, faces=SealingSink(self.key))
        self.refreshes = 0
        self.down.faces_changed = self._refreshed

    def _refreshed(self) -> None:
        self.refreshes += 1

    def faces(self) -> dict[uuid.UUID, bytes]:
        """{face id: vector bytes} of every face the robot holds, opened with its key."""
        with self.store.connect() as conn:
            embedders = {row.embedder for row in list_faces(conn)}
            return {
                face.row.id: face.vector.astype("<f4").tobytes()
                for embedder in embedders
                for face in open_faces(conn, self.key, embedder)
            }

    async def holds(self, what: str, count: int) -> None:
        await eventually(lambda: len(self.faces()) == count, what, WITHIN_S, poll_s=0.2, in_thread=True)


async def run_both(cloud: Cloud, broker: MosquittoBroker, robot: Robot) -> list[asyncio.Task[None]]:
    login = BrokerLogin(broker.url, "cloud", PASSWORDS["cloud"], "face-downsync-test")
    service = DownSyncService(cloud.context.engine, login, poll_s=0.2)
    tasks = [asyncio.create_task(service.run(), name="down-sync service")]
    async with asyncio.timeout(10):
        await service.subscribed.wait()
    await robot.link.start()
    tasks.append(asyncio.create_task(robot.down.run(), name="robot down-sync"))
    return tasks


def file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def pieces(vector: bytes, size: int = 16) -> list[bytes]:
    return [vector[i : i + size] for i in range(0, len(vector) - size + 1, size)]


async def test_a_passengers_faces_reach_the_robot_of_their_train_sealed_and_leave_it_again(
    cloud: Cloud, broker: MosquittoBroker, tmp_path: Path
) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    await cloud.ok(
        "POST",
        "/base_api/admin/robot",
        json={"id": str(ROBOT), "robot_model_id": "rb2", "robot_model_name": "R"},
    )
    assignment = {"robot_id": str(ROBOT), "train_number": TRAIN, "train_date": today}
    assigned = await cloud.ok("POST", "/base_api/admin/assignment", json=assignment)
    anna = (await cloud.ok("POST", "/base_api/admin/user", json={"name": "Anna"}))["id"]
    boris = (await cloud.ok("POST", "/base_api/admin/user", json={"name": "Boris"}))["id"]
    ticket = await cloud.ok("POST", "/base_api/admin/ticket", json=ticket_body(anna))
    await cloud.ok("POST", "/base_api/admin/ticket", json=ticket_body(boris, train_number=100))
    faces = await enrol(cloud, anna, "obama.jpg", "obama2.jpg")
    await enrol(cloud, boris, "biden.jpg")  # on another train: never sent to this robot
    vectors = await cloud_vectors(cloud, anna)
    assert len(vectors) == 4  # two photos, two embedders each

    robot = Robot(broker, tmp_path)
    tasks = await run_both(cloud, broker, robot)
    try:
        await robot.holds("Anna's 4 embeddings on the robot", 4)
        assert robot.faces() == vectors, "sealed on arrival, they open to the cloud's vectors exactly"
        with robot.store.connect() as conn:
            rows = list_faces(conn)
        assert {(r.user_id, r.source) for r in rows} == {(uuid.UUID(anna), "cloud")}
        stored = file_bytes(robot.path)
        assert not [p for v in vectors.values() for p in pieces(v) if p in stored], "a vector in the clear"
        assert robot.refreshes >= 1

        # One face deleted in the cloud: its two embeddings leave the robot.
        await cloud.ok("DELETE", f"/base_api/admin/user/{anna}/face/{faces[0]}")
        left = await cloud_vectors(cloud, anna)
        await robot.holds("the other photo's 2 embeddings", 2)
        assert robot.faces() == left

        # The ticket revoked: every face withdrawn; a new ticket brings them back.
        await cloud.ok("POST", f"/base_api/admin/ticket/{ticket['id']}/revoke", json={"reason": "refund"})
        await robot.holds("no faces after the revocation", 0)
        await cloud.ok("POST", "/base_api/admin/ticket", json=ticket_body(anna))
        await robot.holds("the faces back with a new ticket", 2)
        assert robot.faces() == left

        # The robot leaves the train: the faces go with the scope; assigned again, they come back.
        await cloud.ok("DELETE", f"/base_api/admin/assignment/{assigned['id']}")
        await robot.holds("no faces once the train is left", 0)
        await cloud.ok("POST", "/base_api/admin/assignment", json=assignment)
        await robot.holds("the faces back with the train", 2)
        stored = file_bytes(robot.path)
        assert not [p for v in vectors.values() for p in pieces(v) if p in stored]
    finally:
        await stop(*tasks)
        await robot.link.close()

    # The ticket ended (its token expired) while the robot ran on: pruned, the database forgets them.
    with robot.store.begin() as conn:
        tokens = replica.table("ticket_tokens")
        conn.execute(update(tokens).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    assert robot.down.prune() == 2
    assert robot.faces() == {}
    robot.store.dispose()


# -- the robot on its own: what replica and DownSync do with face rows ------------------------------------


def face_change(change_id: int, face_id: uuid.UUID, user: uuid.UUID, vector: np.ndarray[Any, Any]) -> Change:
    value = {
        "id": str(face_id),
        "user_id": str(user),
        "embedder": "sface",
        "vector": binary_text(vector.tobytes()),
    }
    return Change(change_id, "face_embeddings", "upsert", str(face_id), value)


def user_and_ticket(change_id: int, user: uuid.UUID) -> list[Change]:
    ticket, at = uuid.uuid4(), "2026-12-02T10:00:00+00:00"
    row = {"id": str(ticket), "user_id": str(user), "train_number": TRAIN, "wagon_number": 1,
           "place_number": 1, "date": at, "station_id": "A", "destination_id": "B", "start_date": at,
           "code": "C", "used": False}  # fmt: skip
    return [
        Change(change_id, "users", "upsert", str(user), {"id": str(user), "name": "Anna"}),
        Change(change_id + 1, "tickets", "upsert", str(ticket), row),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    return open_store(tmp_path / "robot.db")


@pytest.fixture
def key(tmp_path: Path) -> FaceKey:
    create_face_key(tmp_path / "faces.key")
    return load_face_key(tmp_path / "faces.key")


def vector(seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(128).astype("<f4")


def test_a_withdrawn_scope_takes_its_cloud_faces_and_leaves_local_ones_and_other_scopes_deletes(
    store: Engine, key: FaceKey
) -> None:
    anna, local, cloud_face = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    scope = f"train:{TRAIN}"
    with store.begin() as conn:
        add_face(
            conn, key, anna, "sface", vector(1), source="local", at=dt.datetime.now(dt.UTC), face_id=local
        )
        message = Changes(
            scope, "log", 0, 3, (*user_and_ticket(1, anna), face_change(3, cloud_face, anna, vector(2)))
        )
        tally = replica.FaceTally()
        replica.apply_log(conn, message, faces=SealingSink(key), tally=tally)
        assert tally.added == 1
        # A delete in another scope leaves a face that last came in this one (the cloud sends it here again).
        other = Changes(
            "train:100", "log", 0, 1, (Change(1, "face_embeddings", "delete", str(cloud_face), None),)
        )
        replica.apply_log(conn, other, faces=SealingSink(key), tally=tally)
        assert tally.deleted == 0
        assert {f.id for f in list_faces(conn)} == {local, cloud_face}
        withdrawn = Changes(scope, "snapshot", 0, 0, (), "s1", 0, True)
        replica.apply_snapshot_part(conn, withdrawn, faces=SealingSink(key), tally=tally)
        assert tally.deleted == 1
        assert {f.id for f in list_faces(conn)} == {local}, "a local face is never down-sync's to take"
        assert prune_ended(conn, dt.datetime.now(dt.UTC)) == 0, "nor pruning's"


def test_without_a_face_key_face_rows_are_dropped_with_one_warning(
    store: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    anna = uuid.uuid4()
    down = DownSync(link=None, store=store)  # type: ignore[arg-type]  # applying needs no link
    first = Changes(
        "train:742", "log", 0, 3, (*user_and_ticket(1, anna), face_change(3, uuid.uuid4(), anna, vector(3)))
    )
    second = Changes("train:742", "log", 3, 4, (face_change(4, uuid.uuid4(), anna, vector(4)),))
    with caplog.at_level(logging.WARNING):
        assert down._apply(first) == 3
        assert down._apply(second) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "robot-agent keys init" in warnings[0]
    with store.connect() as conn:
        assert list_faces(conn) == []
        assert replica.count(conn, "tickets") == 1


def test_the_agents_face_sink_needs_a_private_face_key_and_is_none_without_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "faces.key"
    assert open_face_sink(key_file) is None
    create_face_key(key_file)
    assert isinstance(open_face_sink(key_file), SealingSink)
    key_file.chmod(0o644)
    with pytest.raises(FaceKeyError, match=r"faces\.key"):
        open_face_sink(key_file)
