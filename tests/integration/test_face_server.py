"""The Face Server through the HTTP API, on SQLite and PostgreSQL, with set-up's real models and photos:
enrolment answers each photo (accepted, or refused with its reason), faces are listed without their vectors
and deleted one or all, only admin tokens reach them, and no vector is ever logged."""

from __future__ import annotations

import logging
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from cloud_sync.db.tables import Face, FaceEmbedding, Role
from cloud_sync.desks.face_enrolment import FaceSettings
from cloud_sync.web.app import create_app
from cloud_sync.web.auth import create_token
from cloud_sync.web.context import CONTEXT
from cloud_sync.web.faces_api import MAX_PHOTO_BYTES, MAX_PHOTOS
from models.faces.embed import SFACE, distance
from tests.integration.test_base_api import new_user, robot_token, ticket_body
from tests.support import face_augment as augment
from tests.support.cloud import Cloud
from tests.support.face_files import MODELS_DIR, face_photo

JPEG = "image/jpeg"


@pytest.fixture
async def cloud(cloud_db_url: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    """The cloud service with face enrolment from set-up's models (var/models), a signing key and an admin
    token."""
    app = create_app(cloud_db_url, tmp_path / "keys", faces=FaceSettings(MODELS_DIR))
    async with TestClient(TestServer(app)) as client:
        context = app[CONTEXT]
        if context.faces.unavailable is not None:
            pytest.fail(f"{context.faces.unavailable} (`make setup` fetches and builds them)", pytrace=False)
        async with context.sessions() as session:
            await context.keys.rotate(session)
            token = await create_token(session, Role.ADMIN)
        yield Cloud(client=client, admin={"Authorization": f"Bearer {token}"})


def photo_of(image: np.ndarray[Any, Any]) -> bytes:
    return augment.encode(np.asarray(image, np.uint8), ".png")


def obama() -> np.ndarray[Any, Any]:
    import cv2

    return np.asarray(cv2.imdecode(np.frombuffer(face_photo("obama.jpg"), np.uint8), cv2.IMREAD_COLOR))


OBAMA_EYES = 107.2  # pixels between the eyes in obama.jpg (YuNet)


def form(*photos: tuple[str, bytes], field: str = "image") -> FormData:
    data = FormData()
    for name, content in photos:
        data.add_field(field, content, filename=name, content_type=JPEG)
    return data


async def enrol(cloud: Cloud, user_id: str, *photos: tuple[str, bytes]) -> dict[str, Any]:
    result: dict[str, Any] = await cloud.ok(
        "POST", f"/base_api/admin/user/{user_id}/face", data=form(*photos)
    )
    return result


def huge_png(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height pixels (the data after it is not needed to refuse it)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def keys_in(value: Any) -> set[str]:
    """Every key of every object in a JSON document."""
    if isinstance(value, dict):
        return set(value).union(*(keys_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_in(v) for v in value))
    return set()


FACE_KEYS = {"id", "user_id", "detector", "embedders", "quality", "created_at"}
QUALITY_KEYS = {"eye_distance", "yaw_degrees", "roll_degrees", "brightness", "sharpness"}
LISTED_KEYS = {"items", "total", "page", "size"} | FACE_KEYS | QUALITY_KEYS
IMAGE_KEYS = {"status", "image", "filename", "face", "reason", "detail", "quality"}
ENROLMENT_KEYS = {"user_id", "accepted", "refused", "images"} | IMAGE_KEYS | FACE_KEYS | QUALITY_KEYS


async def test_one_request_enrols_the_good_photos_and_says_why_each_other_is_refused(cloud: Cloud) -> None:
    user = await new_user(cloud)
    photos = [
        ("obama.jpg", face_photo("obama.jpg")),
        ("obama2.jpg", face_photo("obama2.jpg")),
        ("t1.jpg", face_photo("t1.jpg")),
        # Gaussian blur of 3 chip pixels: sharpness ~6 (the limit is 35).
        ("blurred.png", photo_of(augment.blur(obama(), 3 * OBAMA_EYES / 35.2))),
        # 16 px between the eyes (the limit is 24).
        ("tiny.png", photo_of(augment.scale(obama(), 16 / OBAMA_EYES))),
        ("blank.png", photo_of(np.full((480, 640, 3), 128, np.uint8))),
        ("garbage.jpg", b"\xff\xd8\xff\xe0 these bytes only start like a JPEG"),
        ("huge.png", huge_png(20_000, 20_000)),
    ]
    answer = await enrol(cloud, user["id"], *photos)

    assert (answer["user_id"], answer["accepted"], answer["refused"]) == (user["id"], 2, 6)
    outcome = [(i["image"], i["filename"], i["status"], i.get("reason")) for i in answer["images"]]
    assert outcome == [
        (0, "obama.jpg", "accepted", None),
        (1, "obama2.jpg", "accepted", None),
        (2, "t1.jpg", "refused", "several_faces"),
        (3, "blurred.png", "refused", "too_blurred"),
        (4, "tiny.png", "refused", "face_too_small"),
        (5, "blank.png", "refused", "no_face"),
        (6, "garbage.jpg", "refused", "not_an_image"),
        (7, "huge.png", "refused", "not_an_image"),
    ]
    details = {i["filename"]: i.get("detail", "") for i in answer["images"]}
    assert "under 35" in details["blurred.png"]
    assert "20000x20000 pixels, over the limit of 50 megapixels" in details["huge.png"]
    assert keys_in(answer) == ENROLMENT_KEYS  # no vector, under any name
    accepted = [i["face"] for i in answer["images"] if i["status"] == "accepted"]
    for face in accepted:
        assert face["user_id"] == user["id"]
        assert face["detector"] == "yunet"
        assert face["embedders"] == ["dlib_resnet_v1", "sface"]
        assert face["quality"]["eye_distance"] > 24
        assert abs(face["quality"]["yaw_degrees"]) < 30
    blurred = answer["images"][3]
    assert blurred["quality"]["sharpness"] < 35

    # Stored: two faces, each with a 128-d float32 vector per embedder; Obama's two photos match.
    async with cloud.context.sessions() as session:
        faces = (await session.exec(select(Face))).all()
        rows = (await session.exec(select(FaceEmbedding))).all()
    assert {str(f.id) for f in faces} == {f["id"] for f in accepted}
    assert sorted((str(r.face_id), r.embedder) for r in rows) == sorted(
        (f["id"], e) for f in accepted for e in ("dlib_resnet_v1", "sface")
    )
    assert all(len(r.vector) == 128 * 4 for r in rows)
    sface = [np.frombuffer(r.vector, "<f4") for r in rows if r.embedder == "sface"]
    assert all(np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-5 for v in sface)
    assert distance(SFACE.metric, sface[0], sface[1]) < SFACE.threshold


async def test_faces_are_listed_without_vectors_and_deleted_one_or_all(cloud: Cloud) -> None:
    user = await new_user(cloud)
    first = await enrol(cloud, user["id"], ("obama.jpg", face_photo("obama.jpg")))
    second = await enrol(cloud, user["id"], ("obama2.jpg", face_photo("obama2.jpg")))
    ids = [first["images"][0]["face"]["id"], second["images"][0]["face"]["id"]]

    response = await cloud.client.get(f"/base_api/admin/user/{user['id']}/faces", headers=cloud.admin)
    text = await response.text()
    page = await response.json()
    assert (page["total"], page["page"]) == (2, 1)
    assert [f["id"] for f in page["items"]] == ids  # oldest first
    assert set(page["items"][0]) == {"id", "user_id", "detector", "embedders", "quality", "created_at"}
    assert page["items"][0] == first["images"][0]["face"]
    assert keys_in(page) == LISTED_KEYS
    assert "vector" not in text
    one = await cloud.ok("GET", f"/base_api/admin/user/{user['id']}/faces?size=1&page=2")
    assert ([f["id"] for f in one["items"]], one["total"]) == ([ids[1]], 2)

    gone = await cloud.ok("DELETE", f"/base_api/admin/user/{user['id']}/face/{ids[0]}")
    assert gone == {"status": "OK"}
    again = await cloud.client.delete(f"/base_api/admin/user/{user['id']}/face/{ids[0]}", headers=cloud.admin)
    assert (again.status, await again.json()) == (
        404,
        {"detail": f"face {ids[0]} of user {user['id']} not found"},
    )
    listed = await cloud.ok("GET", f"/base_api/admin/user/{user['id']}/faces")
    assert [f["id"] for f in listed["items"]] == [ids[1]]

    await enrol(cloud, user["id"], ("obama.jpg", face_photo("obama.jpg")))
    assert await cloud.ok("DELETE", f"/base_api/admin/user/{user['id']}/faces") == {
        "status": "OK",
        "deleted": 2,
    }
    assert (await cloud.ok("GET", f"/base_api/admin/user/{user['id']}/faces"))["total"] == 0
    async with cloud.context.sessions() as session:
        assert (await session.exec(select(Face))).all() == []
        assert (await session.exec(select(FaceEmbedding))).all() == []
    assert await cloud.ok("DELETE", f"/base_api/admin/user/{user['id']}/faces") == {
        "status": "OK",
        "deleted": 0,
    }


async def test_only_admin_tokens_reach_faces(cloud: Cloud) -> None:
    user = await new_user(cloud)
    enrolled = await enrol(cloud, user["id"], ("obama.jpg", face_photo("obama.jpg")))
    face_id = enrolled["images"][0]["face"]["id"]
    _store, store = await cloud.store_with_token()
    robot = await robot_token(cloud)
    base = f"/base_api/admin/user/{user['id']}"
    routes = [
        ("POST", f"{base}/face"),
        ("GET", f"{base}/faces"),
        ("DELETE", f"{base}/face/{face_id}"),
        ("DELETE", f"{base}/faces"),
    ]
    for method, path in routes:
        for headers, status in (
            (store, 403),
            (robot, 403),
            ({}, 401),
            ({"Authorization": "Bearer rbt_not-a-token"}, 401),
        ):
            data = form(("obama2.jpg", face_photo("obama2.jpg"))) if method == "POST" else None
            response = await cloud.client.request(method, path, headers=headers, data=data)
            assert (method, path, response.status) == (method, path, status), await response.text()
            assert "detail" in await response.json()
    # Nothing was enrolled or deleted by them.
    listed = await cloud.ok("GET", f"{base}/faces")
    assert [f["id"] for f in listed["items"]] == [face_id]


async def test_a_face_is_reached_only_under_its_own_user(cloud: Cloud) -> None:
    anna, boris = await new_user(cloud, "Anna"), await new_user(cloud, "Boris")
    enrolled = await enrol(cloud, anna["id"], ("obama.jpg", face_photo("obama.jpg")))
    face_id = enrolled["images"][0]["face"]["id"]
    response = await cloud.client.delete(
        f"/base_api/admin/user/{boris['id']}/face/{face_id}", headers=cloud.admin
    )
    # Worded as for a face that does not exist: Boris's path says nothing of Anna's faces.
    assert (response.status, await response.json()) == (
        404,
        {"detail": f"face {face_id} of user {boris['id']} not found"},
    )
    assert (await cloud.ok("GET", f"/base_api/admin/user/{boris['id']}/faces"))["total"] == 0
    assert await cloud.ok("DELETE", f"/base_api/admin/user/{boris['id']}/faces") == {
        "status": "OK",
        "deleted": 0,
    }
    assert (await cloud.ok("GET", f"/base_api/admin/user/{anna['id']}/faces"))["total"] == 1


async def test_an_unknown_user_is_404_on_every_face_route(cloud: Cloud) -> None:
    nobody = uuid.uuid4()
    base = f"/base_api/admin/user/{nobody}"
    for method, path in [
        ("POST", f"{base}/face"),
        ("GET", f"{base}/faces"),
        ("DELETE", f"{base}/face/{uuid.uuid4()}"),
        ("DELETE", f"{base}/faces"),
    ]:
        data = form(("obama.jpg", face_photo("obama.jpg"))) if method == "POST" else None
        response = await cloud.client.request(method, path, headers=cloud.admin, data=data)
        assert (method, response.status, await response.json()) == (
            method,
            404,
            {"detail": f"user {nobody} not found"},
        )
    bad = await cloud.client.get("/base_api/admin/user/not-a-uuid/faces", headers=cloud.admin)
    assert bad.status == 422
    assert (await bad.json())["detail"][0]["loc"] == ["path", "user_id"]


async def test_bodies_that_are_not_a_few_photos_are_refused_clearly(cloud: Cloud) -> None:
    user = await new_user(cloud)
    path = f"/base_api/admin/user/{user['id']}/face"
    photo = ("obama.jpg", face_photo("obama.jpg"))

    async def refused(status: int, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        response = await cloud.client.post(path, headers={**cloud.admin, **(headers or {})}, **kwargs)
        assert response.status == status, await response.text()
        return (await response.json())["detail"]

    detail = await refused(415, json={"image": "obama.jpg"})
    assert detail == "send multipart/form-data with one or more `image` parts, not application/json"
    too_many = await refused(422, data=form(*[photo] * (MAX_PHOTOS + 1)))
    assert too_many == [
        {"loc": ["body", "image"], "msg": f"at most {MAX_PHOTOS} files in one request", "type": "too_long"}
    ]
    wrong_field = await refused(422, data=form(photo, field="images"))
    assert wrong_field[0]["loc"] == ["body", "images"]
    assert "send files as `image` parts" in wrong_field[0]["msg"]
    assert (await enrol(cloud, user["id"], ("empty.jpg", b"")))["images"][0]["reason"] == "not_an_image"
    big = await refused(413, data=form(photo, ("big.jpg", b"\xff" * (MAX_PHOTO_BYTES + 1))))
    assert big == f"image 1 (big.jpg) is over the limit of {MAX_PHOTO_BYTES:,} bytes per file"
    broken = await refused(
        422,
        data=b"--x\r\nno headers",
        headers={"Content-Type": "multipart/form-data; boundary=y"},
    )
    assert "not a valid multipart/form-data body" in broken[0]["msg"]
    # None of it stored anything.
    assert (await cloud.ok("GET", f"/base_api/admin/user/{user['id']}/faces"))["total"] == 0


async def test_deleting_a_user_deletes_their_faces(cloud: Cloud) -> None:
    user = await new_user(cloud)
    await enrol(cloud, user["id"], ("obama.jpg", face_photo("obama.jpg")))
    traveller = await new_user(cloud, "Boris")
    await enrol(cloud, traveller["id"], ("obama2.jpg", face_photo("obama2.jpg")))
    await cloud.ok("POST", "/base_api/admin/ticket", json=ticket_body(traveller["id"]))

    assert await cloud.ok("DELETE", f"/base_api/admin/user/{user['id']}") == {"status": "OK"}
    # A user with a ticket is kept (409), and so are their faces.
    kept = await cloud.client.delete(f"/base_api/admin/user/{traveller['id']}", headers=cloud.admin)
    assert kept.status == 409
    async with cloud.context.sessions() as session:
        faces = (await session.exec(select(Face))).all()
        embedders = (await session.exec(select(FaceEmbedding))).all()
    assert [str(f.user_id) for f in faces] == [traveller["id"]]
    assert {e.face_id for e in embedders} == {faces[0].id}


async def test_no_vector_reaches_a_log_line_or_an_error(
    cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await new_user(cloud)
    answer = await enrol(
        cloud, user["id"], ("obama.jpg", face_photo("obama.jpg")), ("t1.jpg", face_photo("t1.jpg"))
    )
    face_id = answer["images"][0]["face"]["id"]
    await cloud.ok("GET", f"/base_api/admin/user/{user['id']}/faces")
    async with cloud.context.sessions() as session:
        vectors = [r.vector for r in (await session.exec(select(FaceEmbedding))).all()]
    # A row the database refuses: the error's text is logged whole when nothing expects it.
    async with cloud.context.sessions() as session:
        session.add(
            FaceEmbedding(
                face_id=uuid.uuid4(), user_id=uuid.UUID(user["id"]), embedder="sface", vector=vectors[0]
            )
        )
        with pytest.raises(IntegrityError) as refused:
            await session.commit()
    await cloud.ok("DELETE", f"/base_api/admin/user/{user['id']}/face/{face_id}")

    assert len(vectors) == 2
    logged = "\n".join(
        [r.getMessage() + (r.exc_text or "") for r in caplog.records] + [caplog.text, str(refused.value)]
    )
    assert f"faces enrolled user={user['id']} accepted=1 refused=1" in logged
    assert "hidden due to hide_parameters" in str(refused.value)
    for vector in vectors:
        floats = np.frombuffer(vector, "<f4")
        forms = [
            vector.hex(),
            vector[:16].hex(),
            repr(vector)[2:40],
            str(floats[:3])[1:20],
            repr(float(floats[0])),
        ]
        for text in forms:
            assert text not in logged, text


async def test_without_models_everything_else_is_served(
    cloud_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    app = create_app(cloud_db_url, tmp_path / "keys", faces=FaceSettings(empty))
    with caplog.at_level(logging.WARNING):
        async with TestClient(TestServer(app)) as client:
            app[CONTEXT].faces.announce()  # as `cloud-sync serve` does once it listens
            context = app[CONTEXT]
            async with context.sessions() as session:
                await context.keys.rotate(session)
                token = await create_token(session, Role.ADMIN)
            cloud = Cloud(client=client, admin={"Authorization": f"Bearer {token}"})
            user = await new_user(cloud)
            response = await client.post(
                f"/base_api/admin/user/{user['id']}/face", headers=cloud.admin, data=form(("a.jpg", b"x"))
            )
            detail = (await response.json())["detail"]
            assert response.status == 503
            assert "robot-agent models fetch" in detail
            assert detail.startswith("face enrolment is unavailable: ")
            # Listing and forgetting need no models; tickets are issued as ever.
            assert (await cloud.ok("GET", f"/base_api/admin/user/{user['id']}/faces"))["total"] == 0
            assert await cloud.ok("DELETE", f"/base_api/admin/user/{user['id']}/faces") == {
                "status": "OK",
                "deleted": 0,
            }
            await cloud.ok("POST", "/base_api/admin/ticket", json=ticket_body(user["id"]))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "robot-agent models fetch" in warnings[0]
    assert "everything else is served" in warnings[0]
