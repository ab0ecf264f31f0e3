"""PostgreSQL drops every connection of the service (as a restart does): requests in flight get 503, never
500; the service reconnects by itself; no purchase is lost or stored twice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_sync.db.tables import Role
from cloud_sync.web.app import create_app
from cloud_sync.web.auth import create_token
from cloud_sync.web.context import CONTEXT
from tests.support.cloud import Cloud, migrated
from tests.support.postgres import ADMIN_DSN, ThrowawayDatabase


@pytest.fixture
async def pg_cloud(postgres_db: ThrowawayDatabase, tmp_path: Path) -> AsyncIterator[Cloud]:
    app = create_app(migrated(postgres_db.dsn), tmp_path / "keys")
    async with TestClient(TestServer(app)) as client:
        context = app[CONTEXT]
        async with context.sessions() as session:
            token = await create_token(session, Role.ADMIN)
        yield Cloud(client=client, admin={"Authorization": f"Bearer {token}"})


async def drop_connections(database: str) -> int:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
    return len(rows)


async def test_dropped_connections_give_503_then_recover(
    pg_cloud: Cloud, postgres_db: ThrowawayDatabase
) -> None:
    store_id, store = await pg_cloud.store_with_token()
    item = await pg_cloud.ok(
        "POST",
        "/store_api/store/item",
        headers=store,
        json={"name": "Tea", "description": "d", "price_penny": 1},
    )
    body = {"user_id": str(uuid.uuid4()), "items": [{"item_id": item["id"], "count": 1}]}
    statuses: list[int] = []
    for round_ in range(3):
        assert await drop_connections(postgres_db.name) >= 1, (
            f"round {round_}: the service held no connection"
        )
        for _ in range(8):
            response = await pg_cloud.client.post("/store_api/store/purchase", headers=store, json=body)
            statuses.append(response.status)
            if response.status == 503:
                assert response.headers["Retry-After"] == "1"
        listed = await pg_cloud.client.get("/store_api/admin/stores", headers=pg_cloud.admin)
        statuses.append(listed.status)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-5:] == [200] * 5
    # Every purchase answered 200 is stored once; none answered 503 is stored.
    conn = await asyncpg.connect(postgres_db.dsn)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM purchases WHERE store_id = $1", uuid.UUID(store_id)
        )
    finally:
        await conn.close()
    purchase_statuses = [s for i, s in enumerate(statuses) if i % 9 != 8]
    assert stored == purchase_statuses.count(200)
