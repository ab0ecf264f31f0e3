"""The seed's Store API, route by route, on SQLite and PostgreSQL: shapes, auth boundaries, oversell."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from cloud_sync.db import changes
from cloud_sync.db.tables import Role
from tests.support.cloud import Cloud

STORE_BODY = {
    "name": "Вагон-ресторан",
    "description": "Hot meals",
    "logo_url": "/r.png",
    "store_type": "RESTAURANT",
}


async def add_item(cloud: Cloud, store: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"name": "Tea", "description": "Black tea", "price_penny": 15000, **fields}
    item: dict[str, Any] = await cloud.ok("POST", "/store_api/store/item", headers=store, json=body)
    return item


async def test_admin_manages_stores_with_the_seed_shapes(cloud: Cloud) -> None:
    created = await cloud.ok("POST", "/store_api/admin/store", json=STORE_BODY)
    assert set(created) == {"id", "name", "description", "logo_url", "store_type"}
    assert {k: created[k] for k in STORE_BODY} == STORE_BODY
    assert await cloud.ok("GET", f"/store_api/admin/store/{created['id']}") == created
    for i in range(3):
        await cloud.ok("POST", "/store_api/admin/store", json={**STORE_BODY, "name": f"Shop {i}"})
    page = await cloud.ok("GET", "/store_api/admin/stores?page=2&size=2")
    assert list(page) == ["items", "total", "page", "size"]
    assert (page["total"], page["page"], page["size"], len(page["items"])) == (4, 2, 2, 2)
    first = await cloud.ok("GET", "/store_api/admin/stores")
    assert (first["page"], first["size"], first["items"][0]["id"]) == (1, 50, created["id"])
    assert await cloud.ok("DELETE", f"/store_api/admin/store/{created['id']}") == {"status": "OK"}
    gone = await cloud.client.get(f"/store_api/admin/store/{created['id']}", headers=cloud.admin)
    assert gone.status == 404
    assert (await gone.json())["detail"] == f"store {created['id']} not found"


async def test_items_belong_to_the_store_of_the_token(cloud: Cloud) -> None:
    _, store_a = await cloud.store_with_token("A")
    _, store_b = await cloud.store_with_token("B")
    tea = await add_item(cloud, store_a, balance=5, category="drinks")
    assert set(tea) == {"id", "name", "description", "price_penny", "logo_url", "balance", "category"}
    await add_item(cloud, store_b, name="Coffee")
    listed = await cloud.ok("GET", "/store_api/store/items", headers=store_a)
    assert [i["name"] for i in listed["items"]] == ["Tea"]
    assert listed["total"] == 1
    # Store B cannot see, change or delete store A's item: to B it does not exist.
    assert (await cloud.client.get(f"/store_api/store/item/{tea['id']}", headers=store_b)).status == 404
    put = await cloud.client.put("/store_api/store/item", headers=store_b, json={**tea, "name": "Stolen"})
    assert put.status == 404
    assert (await cloud.client.delete(f"/store_api/store/item/{tea['id']}", headers=store_b)).status == 404
    updated = await cloud.ok(
        "PUT", "/store_api/store/item", headers=store_a, json={**tea, "price_penny": 17000}
    )
    assert updated["price_penny"] == 17000
    assert await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store_a) == updated
    assert await cloud.ok("DELETE", f"/store_api/store/item/{tea['id']}", headers=store_a) == {"status": "OK"}
    assert (await cloud.ok("GET", "/store_api/store/items", headers=store_a))["total"] == 0


async def test_a_seed_shaped_put_keeps_what_it_does_not_carry(cloud: Cloud) -> None:
    store_id, store = await cloud.store_with_token()
    await cloud.ok(
        "POST",
        "/base_api/admin/train_store",
        json={"store_id": store_id, "train_number": 742, "train_date": "2026-11-30T00:00:00+03:00"},
    )
    tea = await add_item(cloud, store, balance=1, logo_url="/tea.png", category="drinks")
    kept = {"balance": 1, "logo_url": "/tea.png", "category": "drinks"}
    # What the seed's terminals send: only the seed's keys.
    seed_put = {"id": tea["id"], "name": "Green tea", "description": "Sencha", "price_penny": 16000}
    updated = await cloud.ok("PUT", "/store_api/store/item", headers=store, json=seed_put)
    assert updated == {**seed_put, **kept}
    assert await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store) == updated
    # Robots copy the item from the change log: the update's entry carries the kept fields too.
    async with cloud.context.engine.connect() as conn:
        entry = (
            await conn.execute(
                select(changes.CHANGES.c.table_name, changes.CHANGES.c.row_key, changes.CHANGES.c.value)
                .order_by(changes.CHANGES.c.change_id.desc())
                .limit(1)
            )
        ).one()
    assert (entry.table_name, entry.row_key) == ("store_items", tea["id"])
    assert {k: entry.value[k] for k in ("name", *kept)} == {"name": "Green tea", **kept}
    # Stock is still counted: 5 of the one left are refused, the one is sold.
    five = {"user_id": str(uuid.uuid4()), "items": [{"item_id": tea["id"], "count": 5}]}
    refused = await cloud.client.post("/store_api/store/purchase", headers=store, json=five)
    assert refused.status == 409
    assert (await refused.json())["detail"] == f"item {tea['id']} (Green tea): 5 wanted, 1 in stock"
    one = {"user_id": str(uuid.uuid4()), "items": [{"item_id": tea["id"], "count": 1}]}
    await cloud.ok("POST", "/store_api/store/purchase", headers=store, json=one)
    assert (await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store))["balance"] == 0


async def test_a_put_clears_an_optional_field_only_when_it_says_null(cloud: Cloud) -> None:
    _, store = await cloud.store_with_token()
    tea = await add_item(cloud, store, balance=3, logo_url="/tea.png", category="drinks")
    cleared = await cloud.ok(
        "PUT", "/store_api/store/item", headers=store, json={**tea, "logo_url": None, "balance": None}
    )
    assert (cleared["logo_url"], cleared["balance"], cleared["category"]) == (None, None, "drinks")
    assert await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store) == cleared
    # Stock no longer counted: any number sells.
    many = {"user_id": str(uuid.uuid4()), "items": [{"item_id": tea["id"], "count": 50}]}
    await cloud.ok("POST", "/store_api/store/purchase", headers=store, json=many)
    # The seed's own keys cannot be cleared: they are required, and null is no value for them.
    response = await cloud.client.put(
        "/store_api/store/item", headers=store, json={**tea, "description": None}
    )
    assert response.status == 422
    assert (await response.json())["detail"][0]["loc"] == ["body", "description"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/store_api/admin/stores"),
        ("POST", "/store_api/admin/store"),
        ("GET", "/store_api/store/items"),
        ("POST", "/store_api/store/purchase"),
        ("GET", "/base_api/admin/users"),
    ],
)
async def test_no_token_or_a_bad_token_is_401(cloud: Cloud, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer rbt_not-a-token"}, {"Authorization": "Basic abc"}):
        response = await cloud.client.request(method, path, headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "detail" in await response.json()


async def test_roles_are_kept_apart(cloud: Cloud) -> None:
    _, store = await cloud.store_with_token()
    # A store token on an admin route, an admin token on a store route: both 403, naming the role needed.
    response = await cloud.client.get("/store_api/admin/stores", headers=store)
    assert response.status == 403
    assert "admin" in (await response.json())["detail"]
    response = await cloud.client.get("/store_api/store/items", headers=cloud.admin)
    assert response.status == 403
    assert "store" in (await response.json())["detail"]


async def test_purchase_decrements_balances_and_creates_a_task(cloud: Cloud) -> None:
    store_id, store = await cloud.store_with_token()
    tea = await add_item(cloud, store, balance=10)
    cake = await add_item(cloud, store, name="Cake", balance=None)
    user = str(uuid.uuid4())
    body = {
        "user_id": user,
        "items": [{"item_id": tea["id"], "count": 3}, {"item_id": cake["id"], "count": 50}],
        "is_default_ready": True,
    }
    bought = await cloud.ok("POST", "/store_api/store/purchase", headers=store, json=body)
    assert list(bought) == ["id", "store_id", "user_id", "items", "date"]
    assert (bought["store_id"], bought["user_id"], bought["items"]) == (store_id, user, body["items"])
    assert (await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store))["balance"] == 7
    assert (await cloud.ok("GET", f"/store_api/store/item/{cake['id']}", headers=store))["balance"] is None
    tasks = await cloud.ok("GET", "/store_api/store/tasks", headers=store)
    [task] = tasks["items"]
    assert (task["purchase_id"], task["user_id"], task["is_ready"]) == (bought["id"], user, True)


async def test_oversell_is_refused_naming_the_item_and_changes_nothing(cloud: Cloud) -> None:
    _, store = await cloud.store_with_token()
    tea = await add_item(cloud, store, balance=10)
    cake = await add_item(cloud, store, name="Cake", balance=2)
    body = {
        "user_id": str(uuid.uuid4()),
        "items": [{"item_id": tea["id"], "count": 4}, {"item_id": cake["id"], "count": 3}],
    }
    response = await cloud.client.post("/store_api/store/purchase", headers=store, json=body)
    assert response.status == 409
    assert (await response.json())["detail"] == f"item {cake['id']} (Cake): 3 wanted, 2 in stock"
    assert (await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store))["balance"] == 10
    assert (await cloud.ok("GET", "/store_api/store/tasks", headers=store))["total"] == 0
    # The same item twice in one purchase counts twice.
    twice = {
        "user_id": str(uuid.uuid4()),
        "items": [{"item_id": cake["id"], "count": 2}, {"item_id": cake["id"], "count": 1}],
    }
    assert (await cloud.client.post("/store_api/store/purchase", headers=store, json=twice)).status == 409


async def test_concurrent_purchases_never_sell_more_than_the_balance(cloud: Cloud) -> None:
    _, store = await cloud.store_with_token()
    tea = await add_item(cloud, store, balance=10)
    body = {"user_id": str(uuid.uuid4()), "items": [{"item_id": tea["id"], "count": 1}]}
    responses = await asyncio.gather(
        *(cloud.client.post("/store_api/store/purchase", headers=store, json=body) for _ in range(25))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 10 + [409] * 15
    assert (await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store))["balance"] == 0
    assert (await cloud.ok("GET", "/store_api/store/tasks?size=100", headers=store))["total"] == 10


async def test_purchase_of_an_unknown_or_foreign_item_is_404(cloud: Cloud) -> None:
    _, store_a = await cloud.store_with_token("A")
    _, store_b = await cloud.store_with_token("B")
    foreign = await add_item(cloud, store_b, balance=3)
    for item_id in (foreign["id"], str(uuid.uuid4())):
        body = {"user_id": str(uuid.uuid4()), "items": [{"item_id": item_id, "count": 1}]}
        response = await cloud.client.post("/store_api/store/purchase", headers=store_a, json=body)
        assert response.status == 404
        assert (await response.json())["detail"] == f"item {item_id} not found"
    assert (await cloud.ok("GET", f"/store_api/store/item/{foreign['id']}", headers=store_b))["balance"] == 3


async def test_tasks_are_marked_ready_by_their_store_only(cloud: Cloud) -> None:
    _, store_a = await cloud.store_with_token("A")
    _, store_b = await cloud.store_with_token("B")
    tea = await add_item(cloud, store_a)
    body = {"user_id": str(uuid.uuid4()), "items": [{"item_id": tea["id"], "count": 1}]}
    await cloud.ok("POST", "/store_api/store/purchase", headers=store_a, json=body)
    [task] = (await cloud.ok("GET", "/store_api/store/tasks?is_ready=false", headers=store_a))["items"]
    assert (
        await cloud.client.put(f"/store_api/store/task/{task['id']}/ready", headers=store_b)
    ).status == 404
    ready = await cloud.ok("PUT", f"/store_api/store/task/{task['id']}/ready", headers=store_a)
    assert ready["is_ready"] is True
    assert (await cloud.ok("GET", "/store_api/store/tasks?is_ready=false", headers=store_a))["total"] == 0


async def test_a_store_with_purchases_cannot_be_deleted(cloud: Cloud) -> None:
    store_id, store = await cloud.store_with_token()
    tea = await add_item(cloud, store)
    body = {"user_id": str(uuid.uuid4()), "items": [{"item_id": tea["id"], "count": 1}]}
    await cloud.ok("POST", "/store_api/store/purchase", headers=store, json=body)
    response = await cloud.client.delete(f"/store_api/admin/store/{store_id}", headers=cloud.admin)
    assert response.status == 409
    sold = await cloud.client.delete(f"/store_api/store/item/{tea['id']}", headers=store)
    assert sold.status == 409


async def test_deleting_a_store_ends_its_tokens(cloud: Cloud) -> None:
    store_id, store = await cloud.store_with_token()
    await cloud.ok("DELETE", f"/store_api/admin/store/{store_id}")
    assert (await cloud.client.get("/store_api/store/items", headers=store)).status == 401


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("page=0", ["query", "page"]),
        ("size=0", ["query", "size"]),
        ("size=101", ["query", "size"]),
        ("page=x", ["query", "page"]),
    ],
)
async def test_page_bounds_are_422_in_fastapis_shape(cloud: Cloud, query: str, loc: list[str]) -> None:
    response = await cloud.client.get(f"/store_api/admin/stores?{query}", headers=cloud.admin)
    assert response.status == 422
    [error] = (await response.json())["detail"]
    assert error["loc"] == loc
    assert set(error) == {"loc", "msg", "type"}


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (b"", ["body"], "missing"),
        (b"{not json", ["body"], "json_invalid"),
        (b"[]", ["body"], "model_type"),
        (b'{"name": "T", "description": "d", "price_penny": "5"}', ["body", "price_penny"], "int_type"),
        (b'{"name": "T", "description": "d"}', ["body", "price_penny"], "missing"),
    ],
)
async def test_bad_bodies_are_422_and_change_nothing(
    cloud: Cloud, body: bytes, loc: list[Any], kind: str
) -> None:
    _, store = await cloud.store_with_token()
    response = await cloud.client.post(
        "/store_api/store/item", data=body, headers={**store, "Content-Type": "application/json"}
    )
    assert response.status == 422
    [error] = (await response.json())["detail"]
    assert (error["loc"], error["type"]) == (loc, kind)
    assert (await cloud.ok("GET", "/store_api/store/items", headers=store))["total"] == 0


async def test_garbage_ids_are_422_and_unknown_routes_are_json(cloud: Cloud) -> None:
    response = await cloud.client.get("/store_api/admin/store/not-a-uuid", headers=cloud.admin)
    assert response.status == 422
    assert (await response.json())["detail"][0]["loc"] == ["path", "store_id"]
    missing = await cloud.client.get("/store_api/nothing-here")
    assert (missing.status, await missing.json()) == (404, {"detail": "Not Found"})
    wrong = await cloud.client.patch("/store_api/admin/stores", headers=cloud.admin)
    assert wrong.status == 405
    assert (await wrong.json())["detail"] == "Method Not Allowed"


async def test_a_body_beyond_the_limit_is_refused(cloud: Cloud) -> None:
    _, store = await cloud.store_with_token()
    response = await cloud.client.post("/store_api/store/item", headers=store, data=b"x" * 100_000)
    assert response.status == 413
    assert "detail" in await response.json()


async def test_store_token_of_a_robot_role_is_refused(cloud: Cloud) -> None:
    robot = await cloud.ok(
        "POST", "/base_api/admin/robot", json={"robot_model_id": "rb2", "robot_model_name": "Railbot 2"}
    )
    token = await cloud.token(Role.ROBOT, robot_id=uuid.UUID(robot["id"]))
    assert (await cloud.client.get("/store_api/store/items", headers=token)).status == 403


async def test_purchases_committed_together_keep_their_own_answers(cloud: Cloud) -> None:
    _, store = await cloud.store_with_token()
    tea = await add_item(cloud, store, balance=3)
    cake = await add_item(cloud, store, name="Cake")
    user = str(uuid.uuid4())
    bodies = [
        {"user_id": user, "items": [{"item_id": cake["id"], "count": 1}, {"item_id": tea["id"], "count": 2}]},
        {
            "user_id": user,
            "items": [{"item_id": tea["id"], "count": 2}],
        },  # only 1 left by then, or the first fails
        {"user_id": user, "items": [{"item_id": str(uuid.uuid4()), "count": 1}]},
        {"user_id": user, "items": [{"item_id": cake["id"], "count": 5}]},
    ]
    responses = await asyncio.gather(
        *(cloud.client.post("/store_api/store/purchase", headers=store, json=b) for b in bodies)
    )
    statuses = [r.status for r in responses]
    assert statuses[2:] == [404, 200]
    assert sorted(statuses[:2]) == [200, 409]
    balance = (await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store))["balance"]
    assert balance == 1
    tasks = await cloud.ok("GET", "/store_api/store/tasks", headers=store)
    assert tasks["total"] == 2
