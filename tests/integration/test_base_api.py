"""The Base API on SQLite and PostgreSQL: admin resources, tickets with signed tokens, the trust list,
and what robots ask."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import select

from cloud_sync.db.tables import Role
from cloud_sync.desks.signing import KeyRing
from cloud_sync.web.app import create_app
from cloud_sync.web.auth import create_token
from cloud_sync.web.context import CONTEXT
from models.base_server import AuthCard, Engineer
from models.passwords import check_password
from tests.support.cloud import Cloud

MOSCOW = dt.timezone(dt.timedelta(hours=3))
DEPARTURE = dt.datetime.now(MOSCOW).replace(microsecond=0) + dt.timedelta(hours=2)


async def new_user(cloud: Cloud, name: str = "Анна") -> dict[str, Any]:
    user: dict[str, Any] = await cloud.ok("POST", "/base_api/admin/user", json={"name": name})
    return user


def ticket_body(user_id: str, **fields: Any) -> dict[str, Any]:
    """A ticket request for train 742 leaving in two hours; `fields` override any part."""
    return {
        "user_id": user_id,
        "train_number": 742,
        "wagon_number": 5,
        "place_number": 17,
        "date": DEPARTURE.isoformat(),
        "station_id": "2000000",
        "destination_id": "2004000",
        "start_date": DEPARTURE.isoformat(),
        **fields,
    }


async def new_ticket(cloud: Cloud, **fields: Any) -> dict[str, Any]:
    user = await new_user(cloud)
    body = ticket_body(user["id"], **fields)
    ticket: dict[str, Any] = await cloud.ok("POST", "/base_api/admin/ticket", json=body)
    return ticket


async def robot_token(cloud: Cloud) -> dict[str, str]:
    robot = await cloud.ok(
        "POST", "/base_api/admin/robot", json={"robot_model_id": "rb2", "robot_model_name": "Railbot"}
    )
    return await cloud.token(Role.ROBOT, robot_id=uuid.UUID(robot["id"]))


async def verify(cloud: Cloud, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = await cloud.ok(
        "POST", "/base_api/robot/ticket/verify", headers=headers, json=body
    )
    return result


@pytest.mark.parametrize(
    ("name", "plural", "body"),
    [
        ("user", "users", {"name": "Ivan"}),
        (
            "hotel",
            "hotels",
            {"name": "Hotel Neva", "destination_id": "2004000", "description": "By the river"},
        ),
        ("attraction", "attractions", {"name": "Hermitage", "destination_id": "2004000"}),
        ("active_store", "active_stores", {"public_key": "k" * 500}),
        ("robot", "robots", {"robot_model_id": "rb2", "robot_model_name": "Railbot 2"}),
    ],
)
async def test_admin_resources_create_get_page_delete(
    cloud: Cloud, name: str, plural: str, body: dict[str, Any]
) -> None:
    created = await cloud.ok("POST", f"/base_api/admin/{name}", json=body)
    assert {k: created[k] for k in body} == body
    assert await cloud.ok("GET", f"/base_api/admin/{name}/{created['id']}") == created
    page = await cloud.ok("GET", f"/base_api/admin/{plural}?size=1")
    assert (page["items"], page["total"], page["page"], page["size"]) == ([created], 1, 1, 1)
    assert await cloud.ok("DELETE", f"/base_api/admin/{name}/{created['id']}") == {"status": "OK"}
    assert (
        await cloud.client.get(f"/base_api/admin/{name}/{created['id']}", headers=cloud.admin)
    ).status == 404


async def test_engineer_password_is_stored_as_bcrypt_and_never_returned(cloud: Cloud) -> None:
    created = await cloud.ok(
        "POST", "/base_api/admin/engineer", json={"login": "eng1", "password": "s3cret-pass", "privileges": 3}
    )
    assert set(created) == {"id", "login", "privileges", "created_at"}
    async with cloud.context.sessions() as session:
        row = (await session.exec(select(Engineer).where(Engineer.login == "eng1"))).one()
    assert row.password.startswith("$2b$")
    assert len(row.password) == 60
    again = await cloud.client.post(
        "/base_api/admin/engineer", headers=cloud.admin, json={"login": "eng1", "password": "another-pass"}
    )
    assert again.status == 409
    assert check_password("s3cret-pass", row.password)
    assert not check_password("s3cret-pasS", row.password)
    short = await cloud.client.post(
        "/base_api/admin/engineer", headers=cloud.admin, json={"login": "eng2", "password": "x" * 7}
    )
    assert short.status == 422


async def test_auth_card_keeps_only_a_keyed_hash_of_the_uid(cloud: Cloud) -> None:
    engineer = await cloud.ok(
        "POST", "/base_api/admin/engineer", json={"login": "eng", "password": "password1"}
    )
    card = await cloud.ok(
        "POST", "/base_api/admin/auth_card", json={"engineer_id": engineer["id"], "uid": "04A1B2C3D4E5F6"}
    )
    assert "uid" not in card
    assert "key" not in card
    async with cloud.context.sessions() as session:
        row = (await session.exec(select(AuthCard))).one()
    assert "04a1b2c3d4e5f6" not in row.key.lower()
    assert row.key == cloud.context.keys.card_key("04:a1:b2:c3:d4:e5:f6")
    unknown = await cloud.client.post(
        "/base_api/admin/auth_card",
        headers=cloud.admin,
        json={"engineer_id": str(uuid.uuid4()), "uid": "04A1B2C3"},
    )
    assert unknown.status == 404


async def test_robot_public_key_must_be_an_ed25519_pem(cloud: Cloud) -> None:
    pem = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    robot = await cloud.ok(
        "POST",
        "/base_api/admin/robot",
        json={"robot_model_id": "a", "robot_model_name": "b", "public_key": pem},
    )
    assert robot["public_key"] == pem
    bad = await cloud.client.post(
        "/base_api/admin/robot",
        headers=cloud.admin,
        json={"robot_model_id": "a", "robot_model_name": "b", "public_key": "nope"},
    )
    assert bad.status == 422
    assert (await bad.json())["detail"][0]["loc"] == ["body", "public_key"]


async def test_a_robot_is_registered_by_the_id_its_robot_toml_names(cloud: Cloud) -> None:
    robot_id = str(uuid.uuid4())
    body = {"id": robot_id, "robot_model_id": "rb-2", "robot_model_name": "RailBot 2"}
    robot = await cloud.ok("POST", "/base_api/admin/robot", json=body)
    assert robot["id"] == robot_id
    assert (await cloud.ok("GET", f"/base_api/admin/robot/{robot_id}"))["robot_model_name"] == "RailBot 2"
    again = await cloud.client.post("/base_api/admin/robot", headers=cloud.admin, json=body)
    assert (again.status, (await again.json())["detail"]) == (409, "this robot already exists")
    listed = await cloud.ok("GET", "/base_api/admin/robots")
    assert [item["id"] for item in listed["items"]] == [robot_id]
    # Without an id, as the seed's clients post it, the cloud picks one.
    unnamed = await cloud.ok(
        "POST", "/base_api/admin/robot", json={"robot_model_id": "a", "robot_model_name": "b"}
    )
    assert uuid.UUID(unnamed["id"]) != uuid.UUID(robot_id)


async def test_assignment_needs_a_known_robot(cloud: Cloud) -> None:
    robot = await cloud.ok(
        "POST", "/base_api/admin/robot", json={"robot_model_id": "a", "robot_model_name": "b"}
    )
    body = {"robot_id": robot["id"], "train_number": 742, "train_date": "2026-11-27"}
    assigned = await cloud.ok("POST", "/base_api/admin/assignment", json=body)
    assert {k: assigned[k] for k in body} == body
    twice = await cloud.client.post("/base_api/admin/assignment", headers=cloud.admin, json=body)
    assert twice.status == 409
    unknown = await cloud.client.post(
        "/base_api/admin/assignment", headers=cloud.admin, json={**body, "robot_id": str(uuid.uuid4())}
    )
    assert unknown.status == 404


async def test_train_store_needs_a_known_store(cloud: Cloud) -> None:
    store_id, _ = await cloud.store_with_token()
    midnight = "2026-11-27T00:00:00+03:00"
    body = {"store_id": store_id, "train_number": 742, "train_date": midnight}
    created = await cloud.ok("POST", "/base_api/admin/train_store", json=body)
    assert dt.datetime.fromisoformat(created["train_date"]) == dt.datetime.fromisoformat(midnight)
    missing = await cloud.client.post(
        "/base_api/admin/train_store", headers=cloud.admin, json={**body, "store_id": str(uuid.uuid4())}
    )
    assert missing.status == 404


async def test_a_user_with_tickets_cannot_be_deleted(cloud: Cloud) -> None:
    ticket = await new_ticket(cloud)
    response = await cloud.client.delete(f"/base_api/admin/user/{ticket['user_id']}", headers=cloud.admin)
    assert response.status == 409


async def test_ticket_is_issued_with_a_token_that_verifies(cloud: Cloud) -> None:
    ticket = await new_ticket(cloud, code="A7-0042")
    assert ticket["token"].startswith("RB1:")
    assert (ticket["code"], ticket["used"], ticket["revoked"]) == ("A7-0042", False, False)
    assert await cloud.ok("GET", f"/base_api/admin/ticket/{ticket['id']}") == ticket
    robot = await robot_token(cloud)
    result = await verify(
        cloud,
        robot,
        token=ticket["token"],
        train_number=742,
        date=DEPARTURE.date().isoformat(),
        timezone="Europe/Moscow",
    )
    assert result == {"ok": True, "verdict": "valid", "reason": result["reason"], "ticket_id": ticket["id"]}
    wrong = await verify(
        cloud,
        robot,
        token=ticket["token"],
        train_number=743,
        date=DEPARTURE.date().isoformat(),
        timezone="Europe/Moscow",
    )
    assert (wrong["ok"], wrong["verdict"]) == (False, "wrong_train")


async def test_a_revoked_ticket_fails_verification(cloud: Cloud) -> None:
    ticket = await new_ticket(cloud)
    revoked = await cloud.ok(
        "POST", f"/base_api/admin/ticket/{ticket['id']}/revoke", json={"reason": "refunded"}
    )
    assert revoked["revoked"] is True
    result = await verify(cloud, cloud.admin, token=ticket["token"])
    assert (result["ok"], result["verdict"]) == (False, "revoked")


async def test_garbage_tokens_get_a_named_verdict(cloud: Cloud) -> None:
    for token, verdict in (
        ("HC1:abc", "bad_prefix"),
        ("RB1:!!!", "bad_base45"),
        ("RB1:" + "A" * 30, "bad_zlib"),
    ):
        result = await verify(cloud, cloud.admin, token=token)
        assert (result["ok"], result["verdict"], result["ticket_id"]) == (False, verdict, None), result


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"valid_until": "2020-01-02T08:00:00Z"}, ["body", "valid_until"]),
        ({}, ["body", "start_date"]),  # the default validity (8 days after start) is over
    ],
)
async def test_an_already_expired_ticket_is_not_issued(
    cloud: Cloud, fields: dict[str, str], loc: list[str]
) -> None:
    user = await new_user(cloud)
    past = "2020-01-01T08:00:00Z"
    body = ticket_body(user["id"], date=past, start_date=past, **fields)
    response = await cloud.client.post("/base_api/admin/ticket", headers=cloud.admin, json=body)
    assert response.status == 422
    [error] = (await response.json())["detail"]
    assert error["loc"] == loc
    assert "expired already" in error["msg"]


async def test_rotation_keeps_old_tickets_valid_and_signs_new_ones_with_the_new_key(cloud: Cloud) -> None:
    old = await new_ticket(cloud)
    before = (await cloud.ok("GET", "/base_api/keys"))["keys"]
    async with cloud.context.sessions() as session:
        await cloud.context.keys.rotate(session)
    new = await new_ticket(cloud)
    keys = (await cloud.ok("GET", "/base_api/keys", headers={}))["keys"]
    assert len(before) == 1
    assert len(keys) == 2
    assert keys[0]["kid"] == before[0]["kid"]
    assert keys[0]["valid_to"] is not None
    assert keys[1]["valid_to"] is None
    assert (keys[1]["kty"], keys[1]["crv"], len(base64.urlsafe_b64decode(keys[1]["x"] + "="))) == (
        "OKP",
        "Ed25519",
        32,
    )
    for ticket in (old, new):
        assert (await verify(cloud, cloud.admin, token=ticket["token"]))["verdict"] == "valid"
    assert old["token"] != new["token"]


async def test_qr_png_carries_the_token(cloud: Cloud) -> None:
    ticket = await new_ticket(cloud)
    response = await cloud.client.get(f"/base_api/admin/ticket/{ticket['id']}/qr.png", headers=cloud.admin)
    assert response.status == 200
    assert response.content_type == "image/png"
    image = cv2.imdecode(np.frombuffer(await response.read(), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    # The Aruco-based detector, as the robot reads tickets (shared/notes/vision-facts.md): the classic one
    # misses ~3% of these version-10 codes even when rendered cleanly (measured over 200 random tokens).
    text, _points, _ = cv2.QRCodeDetectorAruco().detectAndDecode(image)
    assert text == ticket["token"]


async def test_robot_routes_answer_robots_and_admins_only(cloud: Cloud) -> None:
    user = await new_user(cloud, "Пётр")
    robot = await robot_token(cloud)
    assert (await cloud.ok("GET", f"/base_api/users/{user['id']}", headers=robot))["name"] == "Пётр"
    _, store = await cloud.store_with_token()
    assert (await cloud.client.get(f"/base_api/users/{user['id']}", headers=store)).status == 403
    assert (await cloud.client.get(f"/base_api/users/{uuid.uuid4()}", headers=robot)).status == 404


async def test_hotels_and_attractions_by_destination(cloud: Cloud) -> None:
    await cloud.ok("POST", "/base_api/admin/hotel", json={"name": "Neva", "destination_id": "SPB"})
    await cloud.ok("POST", "/base_api/admin/hotel", json={"name": "Volga", "destination_id": "NN"})
    await cloud.ok("POST", "/base_api/admin/attraction", json={"name": "Hermitage", "destination_id": "SPB"})
    robot = await robot_token(cloud)
    hotels = await cloud.ok("GET", "/base_api/destinations/SPB/hotels", headers=robot)
    assert [h["name"] for h in hotels["items"]] == ["Neva"]
    sights = await cloud.ok("GET", "/base_api/destinations/SPB/attractions", headers=robot)
    assert [a["name"] for a in sights["items"]] == ["Hermitage"]


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"date": "2026-11-27T10:00:00"}, ["body", "date"]),  # no time zone
        ({"train_number": 0}, ["body", "train_number"]),
        ({"valid_until": "2000-01-01T00:00:00Z"}, ["body"]),
        ({"station_id": "x" * 61}, ["body", "station_id"]),
    ],
)
async def test_bad_ticket_requests_are_422(cloud: Cloud, fields: dict[str, Any], loc: list[str]) -> None:
    user = await new_user(cloud)
    body = ticket_body(user["id"], **fields)
    response = await cloud.client.post("/base_api/admin/ticket", headers=cloud.admin, json=body)
    assert response.status == 422
    assert (await response.json())["detail"][0]["loc"] == loc
    assert (await cloud.ok("GET", "/base_api/admin/tickets"))["total"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start_date", "2200-01-01T00:00:00Z"),
        ("date", "1960-01-01T00:00:00Z"),
        ("date", "1969-12-31T23:59:59Z"),
        ("date", "0001-01-01T00:00:00+14:00"),
        ("date", "9999-12-31T23:59:59-14:00"),
        ("date", -1),
        ("date", 99_999_999_999_999),  # pydantic would read it as milliseconds: year 5138
        ("start_date", "0001-01-01T00:00:00+14:00"),
        ("start_date", "9999-12-31T23:59:59-14:00"),
        ("start_date", "2106-02-01T00:00:00Z"),  # in range, but 8 days' default validity is not
        ("valid_until", "2106-02-07T06:28:16Z"),
        ("valid_until", "9999-12-31T23:59:59-14:00"),
    ],
)
async def test_times_a_ticket_cannot_carry_are_422_naming_the_field(
    cloud: Cloud, field: str, value: Any
) -> None:
    user = await new_user(cloud)
    response = await cloud.client.post(
        "/base_api/admin/ticket", headers=cloud.admin, json=ticket_body(user["id"], **{field: value})
    )
    assert response.status == 422, await response.text()
    [error] = (await response.json())["detail"]
    assert error["loc"] == ["body", field]
    assert "2106-02-07T06:28:15Z" in error["msg"] or "date-time string" in error["msg"]
    assert (await cloud.ok("GET", "/base_api/admin/tickets"))["total"] == 0


async def test_a_ticket_at_the_edges_of_numericdate_time_is_issued_and_verifies(cloud: Cloud) -> None:
    ticket = await new_ticket(
        cloud,
        date="1970-01-01T00:00:00Z",
        start_date="2106-02-07T06:28:14+00:00",
        valid_until="2106-02-07T09:28:15+03:00",
    )
    assert ticket["date"] == "1970-01-01T00:00:00Z"
    result = await verify(cloud, cloud.admin, token=ticket["token"])
    assert (result["ok"], result["verdict"]) == (True, "valid")


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
        "0001-01-01T23:59:59Z",  # in UTC, but not as a date west of Greenwich
        "9999-12-31T00:00:00Z",
        -1,
    ],
)
async def test_train_dates_no_reader_can_hold_are_422(cloud: Cloud, value: Any) -> None:
    store_id, _ = await cloud.store_with_token()
    body = {"store_id": store_id, "train_number": 742, "train_date": value}
    response = await cloud.client.post("/base_api/admin/train_store", headers=cloud.admin, json=body)
    assert response.status == 422, await response.text()
    [error] = (await response.json())["detail"]
    assert error["loc"] == ["body", "train_date"]
    assert (await cloud.ok("GET", "/base_api/admin/train_stores"))["total"] == 0


@pytest.mark.parametrize("value", ["0001-01-02T00:00:00Z", "9999-12-30T23:59:59.999999Z"])
async def test_train_dates_at_the_bounds_are_kept(cloud: Cloud, value: str) -> None:
    store_id, _ = await cloud.store_with_token()
    body = {"store_id": store_id, "train_number": 742, "train_date": value}
    created = await cloud.ok("POST", "/base_api/admin/train_store", json=body)
    assert dt.datetime.fromisoformat(created["train_date"]) == dt.datetime.fromisoformat(value)
    again = await cloud.ok("GET", f"/base_api/admin/train_store/{created['id']}")
    assert again == created


async def test_calendar_dates_span_datetimes_range_and_are_text(cloud: Cloud) -> None:
    robot = await cloud.ok(
        "POST", "/base_api/admin/robot", json={"robot_model_id": "a", "robot_model_name": "b"}
    )
    ticket = await new_ticket(cloud)
    for day in ("0001-01-01", "9999-12-31"):
        body = {"robot_id": robot["id"], "train_number": 742, "train_date": day}
        assert (await cloud.ok("POST", "/base_api/admin/assignment", json=body))["train_date"] == day
        for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
            result = await verify(
                cloud, cloud.admin, token=ticket["token"], train_number=742, date=day, timezone=zone
            )
            assert result["verdict"] == "wrong_date"
    # pydantic alone would read 0 as 1970-01-01: a number is no date.
    body = {"robot_id": robot["id"], "train_number": 742, "train_date": 0}
    response = await cloud.client.post("/base_api/admin/assignment", headers=cloud.admin, json=body)
    assert response.status == 422
    assert (await response.json())["detail"][0]["loc"] == ["body", "train_date"]
    verify_body = {"token": ticket["token"], "train_number": 742, "date": 0}
    response = await cloud.client.post("/base_api/robot/ticket/verify", headers=cloud.admin, json=verify_body)
    assert response.status == 422
    assert (await response.json())["detail"][0]["loc"] == ["body", "date"]


async def test_verify_request_checks(cloud: Cloud) -> None:
    for body in (
        {"token": "RB1:x", "train_number": 742},
        {"token": "RB1:x", "timezone": "Mars/Base"},
        {"token": ""},
    ):
        response = await cloud.client.post("/base_api/robot/ticket/verify", headers=cloud.admin, json=body)
        assert response.status == 422, body


async def test_a_ticket_without_a_signing_key_is_503_naming_the_fix(
    cloud_db_url: str, tmp_path: Path
) -> None:
    app = create_app(cloud_db_url, tmp_path / "keys")
    async with TestClient(TestServer(app)) as client:
        async with app[CONTEXT].sessions() as session:
            token = await create_token(session, Role.ADMIN)
        nobody = Cloud(client=client, admin={"Authorization": f"Bearer {token}"})
        user = await new_user(nobody)
        response = await client.post(
            "/base_api/admin/ticket", headers=nobody.admin, json=ticket_body(user["id"])
        )
        assert (response.status, await response.json()) == (
            503,
            {"detail": "no ticket-signing key yet: run `cloud-sync keys rotate`"},
        )
        assert (await nobody.ok("GET", "/base_api/admin/tickets"))["total"] == 0

        async with app[CONTEXT].sessions() as session:  # made elsewhere: the keys folder here lacks it
            key = await KeyRing(tmp_path / "keys").rotate(session)
        (tmp_path / "keys" / f"ticket-{key.kid}.pem").unlink()
        response = await client.post(
            "/base_api/admin/ticket", headers=nobody.admin, json=ticket_body(user["id"])
        )
        assert response.status == 503
        assert (await response.json())["detail"] == (
            f"ticket-signing key {key.kid}: {tmp_path / 'keys' / f'ticket-{key.kid}.pem'} is missing: "
            "the keys folder does not hold this key"
        )
