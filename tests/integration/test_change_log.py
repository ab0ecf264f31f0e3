"""The change log robots sync down from: what the cloud's APIs change is logged, in the right scopes, in the
same transaction; compaction, and snapshots of what a scope holds now."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cloud_sync.db import changes
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
