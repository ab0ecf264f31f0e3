"""The purchase desk under contention: groups that cross each other's items, and SQLite's write lock held by
another connection."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections import Counter

import pytest
from sqlalchemy.engine import make_url

from cloud_sync.desks import purchases
from tests.integration.test_store_api import add_item
from tests.support.cloud import Cloud

PURCHASE = "/store_api/store/purchase"


async def test_purchases_crossing_the_same_items_sell_each_unit_once(cloud: Cloud) -> None:
    """Lines name two counted items in both orders, from 40 purchases at once: on PostgreSQL two groups run
    side by side and lock rows, so this is where a deadlock or a lost update would show."""
    _, store = await cloud.store_with_token()
    tea = await add_item(cloud, store, balance=15)
    cake = await add_item(cloud, store, name="Cake", balance=15)
    forward = [{"item_id": tea["id"], "count": 1}, {"item_id": cake["id"], "count": 1}]
    bodies = [
        {"user_id": str(uuid.uuid4()), "items": forward if n % 2 else forward[::-1], "is_default_ready": True}
        for n in range(40)
    ]
    responses = await asyncio.gather(*(cloud.client.post(PURCHASE, headers=store, json=b) for b in bodies))
    assert Counter(r.status for r in responses) == {200: 15, 409: 25}
    for item in (tea, cake):
        assert (await cloud.ok("GET", f"/store_api/store/item/{item['id']}", headers=store))["balance"] == 0
    tasks = await cloud.ok("GET", "/store_api/store/tasks?size=100", headers=store)
    bought = {(await r.json())["id"] for r in responses if r.status == 200}
    assert {t["purchase_id"] for t in tasks["items"]} == bought
    assert tasks["total"] == 15


def _hold_the_write_lock(cloud_db_url: str) -> sqlite3.Connection:
    blocker = sqlite3.connect(str(make_url(cloud_db_url).database), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


@pytest.mark.parametrize("cloud_db_url", ["sqlite"], indirect=True)
async def test_sqlite_purchases_wait_for_another_writer_while_the_service_answers(
    cloud: Cloud, cloud_db_url: str
) -> None:
    _, store = await cloud.store_with_token()
    tea = await add_item(cloud, store, balance=2)
    body = {"user_id": str(uuid.uuid4()), "items": [{"item_id": tea["id"], "count": 1}]}
    loop = asyncio.get_running_loop()
    longest_stall = 0.0

    async def watch_the_loop() -> None:
        nonlocal longest_stall
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            longest_stall = max(longest_stall, loop.time() - before)

    watcher = asyncio.create_task(watch_the_loop())
    blocker = _hold_the_write_lock(cloud_db_url)
    try:
        purchase = asyncio.create_task(cloud.client.post(PURCHASE, headers=store, json=body))
        await asyncio.sleep(0.5)
        assert not purchase.done()
        listed = await cloud.ok("GET", "/store_api/store/items", headers=store)
        assert [item["balance"] for item in listed["items"]] == [2]
        assert not purchase.done()
    finally:
        blocker.execute("COMMIT")
        blocker.close()
        watcher.cancel()
    # The desk waits for the lock in asyncio sleeps, not in SQLite's busy handler, which would hold the loop
    # (and every other request) for as long as the lock is held. The bound is generous: a sleep of 10 ms
    # overslept by a whole second is a stalled loop, not a slow machine.
    assert longest_stall < 1.0, f"the event loop stalled for {longest_stall:.2f} s"
    response = await purchase
    assert response.status == 200, await response.text()
    assert (await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store))["balance"] == 1


@pytest.mark.parametrize("cloud_db_url", ["sqlite"], indirect=True)
async def test_sqlite_lock_held_too_long_is_503_and_stores_nothing(
    cloud: Cloud, cloud_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(purchases._SqliteWriter, "LOCK_TIMEOUT_S", 0.3)
    _, store = await cloud.store_with_token()
    tea = await add_item(cloud, store, balance=2)
    body = {"user_id": str(uuid.uuid4()), "items": [{"item_id": tea["id"], "count": 1}]}
    blocker = _hold_the_write_lock(cloud_db_url)
    try:
        response = await cloud.client.post(PURCHASE, headers=store, json=body)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["detail"] == "the purchase could not be stored: try again"
    assert (await cloud.ok("GET", f"/store_api/store/item/{tea['id']}", headers=store))["balance"] == 2
    assert (await cloud.ok("GET", "/store_api/store/tasks", headers=store))["total"] == 0
    # The desk goes on once the lock is free.
    assert (await cloud.client.post(PURCHASE, headers=store, json=body)).status == 200
