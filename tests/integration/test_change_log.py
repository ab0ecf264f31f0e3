"""The change log robots sync down from: what the cloud's APIs change is logged, in the right scopes, in the
same transaction; compaction, and snapshots of what a scope holds now."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

from sqlalchemy import select
from sqlmodel import select as sqlmodel_select

from cloud_sync.db import changes
from cloud_sync.db.tables import FaceEmbedding
from cloud_sync.desks.face_enrolment import Enrolled
from cloud_sync.desks.faces import add_faces
from models.faces.choice import EMBEDDERS
from models.faces.quality import Quality
from tests.support.cloud import Cloud

TRAIN = 742


async def log(cloud: Cloud) -> list[tuple[str, str, str, str, Any]]:
    async with cloud.context.engine.connect() as conn:
        rows = await conn.execute(
            select(
                changes.CHANGES.c.scope,
                changes.CHANGES.c.table_name,
                changes.CHANGES.c.op,
                changes.CHANGES.c.row_key,
                changes.CHANGES.c.value,
            ).order_by(changes.CHANGES.c.change_id)
        )
        return [tuple(r) for r in rows]


async def issue_ticket(cloud: Cloud, user: str, train: int = TRAIN) -> dict[str, Any]:
    body = {
        "user_id": user,
        "train_number": train,
        "wagon_number": 3,
        "place_number": 17,
        "date": "2026-11-30T18:40:00+03:00",
        "station_id": "MSK",
        "destination_id": "SPB",
        "start_date": "2026-11-30T18:40:00+03:00",
    }
    ticket: dict[str, Any] = await cloud.ok("POST", "/base_api/admin/ticket", json=body)
    return ticket


async def test_a_ticket_brings_its_passenger_into_its_trains_scope_and_a_revocation_follows(
    cloud: Cloud,
) -> None:
    before = len(await log(cloud))  # the signing key rotated by the fixture went to every robot
    user = (await cloud.ok("POST", "/base_api/admin/user", json={"name": "Anna"}))["id"]
    assert len(await log(cloud)) == before, "a user without tickets is in no robot's scope"
    ticket = await issue_ticket(cloud, user)
    entries = (await log(cloud))[before:]
    assert [(s, t, op, k) for s, t, op, k, _ in entries] == [
        ("train:742", "tickets", "upsert", ticket["id"]),
        ("train:742", "users", "upsert", user),
        ("train:742", "ticket_tokens", "upsert", ticket["id"]),
    ]
    assert entries[0][4]["train_number"] == TRAIN
    assert entries[2][4]["token"] == ticket["token"], "the token a face check verifies comes along"
    assert entries[0][4]["used"] is False
    assert entries[1][4] == {"id": user, "name": "Anna"}

    await cloud.ok("POST", f"/base_api/admin/ticket/{ticket['id']}/revoke", json={"reason": "refunded"})
    last = (await log(cloud))[-1]
    assert last[:4] == ("train:742", "ticket_revocations", "upsert", ticket["id"])
    assert last[4]["reason"] == "refunded"

    await cloud.ok("DELETE", f"/base_api/admin/ticket/{ticket['id']}")
    deleted = [e[:4] for e in (await log(cloud)) if e[2] == "delete"]
    assert ("train:742", "tickets", "delete", ticket["id"]) in deleted


async def test_engineers_go_to_every_robot_and_assignments_to_their_robot(cloud: Cloud) -> None:
    engineer = await cloud.ok(
        "POST", "/base_api/admin/engineer", json={"login": "ivan", "password": "correct horse"}
    )
    robot = await cloud.ok(
        "POST", "/base_api/admin/robot", json={"robot_model_id": "m1", "robot_model_name": "Porter"}
    )
    assignment = await cloud.ok(
        "POST",
        "/base_api/admin/assignment",
        json={"robot_id": robot["id"], "train_number": TRAIN, "train_date": "2026-11-30"},
    )
    entries = await log(cloud)
    found = {(s, t, k) for s, t, _, k, _ in entries}
    assert ("all", "engineers", engineer["id"]) in found
    assert (f"robot:{robot['id']}", "robot_assignments", assignment["id"]) in found
    assert not any(t == "robots" for _, t, _, _, _ in entries), "robots' own rows are not replicated"
    value = next(v for _, t, _, _, v in entries if t == "engineers")
    assert value["password"].startswith("$2"), "only the bcrypt hash travels"
    place = {"name": "Hermitage", "destination_id": "SPB"}
    hotel = await cloud.ok("POST", "/base_api/admin/hotel", json=place | {"name": "Astoria"})
    attraction = await cloud.ok("POST", "/base_api/admin/attraction", json=place)
    last = (await log(cloud))[-2:]
    assert [(s, t, op, k) for s, t, op, k, _ in last] == [
        ("all", "hotels", "upsert", hotel["id"]),
        ("all", "attractions", "upsert", attraction["id"]),
    ]
    assert last[1][4] == {
        "id": attraction["id"],
        "name": "Hermitage",
        "description": None,
        "logo_url": None,
        "destination_id": "SPB",
    }


async def test_a_store_put_on_a_train_brings_its_items_and_their_changes_follow(cloud: Cloud) -> None:
    store, store_token = await cloud.store_with_token()
    item = await cloud.ok(
        "POST",
        "/store_api/store/item",
        headers=store_token,
        json={"name": "Tea", "description": "Black", "price_penny": 9000, "balance": 10},
    )
    before = len(await log(cloud))
    assert before == 1, "a store on no train is in no robot's scope (only the fixture's signing key is)"
    await cloud.ok(
        "POST",
        "/base_api/admin/train_store",
        json={"store_id": store, "train_number": TRAIN, "train_date": "2026-11-30T00:00:00+03:00"},
    )
    tables = [(s, t) for s, t, _, _, _ in (await log(cloud))[before:]]
    assert sorted(tables) == [
        ("train:742", "store_items"),
        ("train:742", "stores"),
        ("train:742", "train_stores"),
    ]
    await cloud.ok(
        "PUT",
        "/store_api/store/item",
        headers=store_token,
        json={**{k: item[k] for k in ("id", "name", "description", "price_penny")}, "balance": 4},
    )
    last = (await log(cloud))[-1]
    assert last[:4] == ("train:742", "store_items", "upsert", item["id"])
    assert last[4]["balance"] == 4


async def test_compaction_leaves_a_floor_and_a_snapshot_holds_what_the_scope_has_now(cloud: Cloud) -> None:
    users = [(await cloud.ok("POST", "/base_api/admin/user", json={"name": f"P{i}"}))["id"] for i in range(3)]
    tickets = [await issue_ticket(cloud, u) for u in users]
    await issue_ticket(cloud, users[0], train=100)  # another train: not in this scope
    await cloud.ok("DELETE", f"/base_api/admin/ticket/{tickets[2]['id']}")
    async with cloud.context.engine.begin() as conn:
        upto = await conn.run_sync(changes.last_change_id)
        removed = await conn.run_sync(changes.compact, upto)
        floor = await conn.run_sync(changes.floor_of, "train:742")
        other = await conn.run_sync(changes.floor_of, "train:9")
        snap = await conn.run_sync(changes.snapshot, "train:742")
    assert floor == upto
    assert other == 0
    assert removed > 0
    assert await log(cloud) == []
    assert sorted((c.table, c.key) for c in snap) == sorted(
        [
            ("users", users[0]),
            ("users", users[1]),
            ("tickets", tickets[0]["id"]),
            ("tickets", tickets[1]["id"]),
            ("ticket_tokens", tickets[0]["id"]),
            ("ticket_tokens", tickets[1]["id"]),
        ]
    )
    assert all(c.op == "upsert" and c.change_id == 0 for c in snap)


async def enrol(cloud: Cloud, user: str, photos: int) -> list[bytes]:
    """`photos` faces of made-up vectors for `user`, stored as enrolment stores them (two embedders each);
    the vectors."""
    made = [
        Enrolled("yunet", Quality(80.0, 1.0, 2.0, 120.0, 300.0), {e: os.urandom(512) for e in EMBEDDERS})
        for _ in range(photos)
    ]
    async with cloud.context.sessions() as session:
        await add_faces(session, uuid.UUID(user), made)
        await session.commit()
    return [v for photo in made for v in photo.vectors.values()]


def replay(entries: list[tuple[str, str, str, str, Any]], scope: str) -> dict[tuple[str, str], Any]:
    """What a robot holding only `scope` would hold after applying its log: {(table, key): value}."""
    held: dict[tuple[str, str], Any] = {}
    for s, table, op, key, value in entries:
        if s == scope:
            if op == "upsert":
                held[(table, key)] = value
            else:
                held.pop((table, key), None)
    return held


async def agree(cloud: Cloud, *scopes: str) -> dict[str, set[str]]:
    """Check each scope's log replayed holds what its snapshot holds (users aside: the log never takes a
    passenger back); the embedding ids each holds."""
    entries = await log(cloud)
    held: dict[str, set[str]] = {}
    for scope in scopes:
        async with cloud.context.engine.connect() as conn:
            snap = await conn.run_sync(changes.snapshot, scope)
        expected = {(c.table, c.key): c.value for c in snap if c.table != "users"}
        replayed = {k: v for k, v in replay(entries, scope).items() if k[0] != "users"}
        assert replayed == expected, scope
        held[scope] = {key for table, key in replayed if table == "face_embeddings"}
    return held


async def test_a_passengers_embeddings_follow_their_unrevoked_tickets_and_the_log_agrees_with_snapshots(
    cloud: Cloud,
) -> None:
    anna = (await cloud.ok("POST", "/base_api/admin/user", json={"name": "Anna"}))["id"]
    boris = (await cloud.ok("POST", "/base_api/admin/user", json={"name": "Boris"}))["id"]
    vectors = await enrol(cloud, anna, 2)
    await enrol(cloud, boris, 1)
    assert await agree(cloud, "train:742", "train:100") == {"train:742": set(), "train:100": set()}

    on_742 = await issue_ticket(cloud, anna)
    on_100 = await issue_ticket(cloud, anna, train=100)
    held = await agree(cloud, "train:742", "train:100")
    async with cloud.context.sessions() as session:
        annas = {
            str(e.id)
            for e in (await session.exec(sqlmodel_select(FaceEmbedding))).all()
            if str(e.user_id) == anna
        }
    assert len(annas) == 4
    assert held == {"train:742": annas, "train:100": annas}, "Boris holds no ticket: his face goes nowhere"

    second_742 = await issue_ticket(cloud, anna)
    await cloud.ok("POST", f"/base_api/admin/ticket/{on_742['id']}/revoke", json={"reason": "lost"})
    assert (await agree(cloud, "train:742"))["train:742"] == annas, "another unrevoked ticket keeps them"
    await cloud.ok("POST", f"/base_api/admin/ticket/{second_742['id']}/revoke", json={"reason": "refund"})
    assert await agree(cloud, "train:742", "train:100") == {"train:742": set(), "train:100": annas}

    third_742 = await issue_ticket(cloud, anna)
    assert (await agree(cloud, "train:742"))["train:742"] == annas, "a new ticket brings them back"

    faces = (await cloud.ok("GET", f"/base_api/admin/user/{anna}/faces"))["items"]
    await cloud.ok("DELETE", f"/base_api/admin/user/{anna}/face/{faces[0]['id']}")
    held = await agree(cloud, "train:742", "train:100")
    assert len(held["train:742"]) == 2
    assert held["train:100"] == held["train:742"]
    text = repr(await log(cloud))
    deleted = [v for v in vectors if base64.b64encode(v).decode() not in text]
    assert len(deleted) == 2, "a deleted face's vectors leave the log"

    for ticket in (on_100, third_742):  # deleted: its token, revocation and the passenger's faces with it
        await cloud.ok("DELETE", f"/base_api/admin/ticket/{ticket['id']}")
    assert await agree(cloud, "train:742", "train:100") == {"train:742": set(), "train:100": set()}
    gone = {(t, k) for s, t, op, k, _ in await log(cloud) if op == "delete" and s == "train:100"}
    assert {("ticket_tokens", on_100["id"]), ("tickets", on_100["id"])} <= gone
