"""/openapi.json is a valid OpenAPI 3.1 document covering every route, and the service keeps to it:
schemathesis fuzzes every operation against a running server (SQLite and PostgreSQL) and finds no 5xx
and no response outside the document."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cloud_sync.app import build_api, create_app, openapi_document
from cloud_sync.auth import create_token
from cloud_sync.context import CONTEXT
from cloud_sync.tables import Role
from models.store_server import Store, StoreType
from tests.support.cloud import migrated
from tests.support.ports import free_port
from tests.support.postgres import ThrowawayDatabase, create_database, drop_database

DOCUMENT: dict[str, Any] = openapi_document(build_api())
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"


def test_document_covers_every_route() -> None:
    api = build_api()
    documented = {(method.upper(), path) for path, ops in DOCUMENT["paths"].items() for method in ops}
    assert documented == {(route.method, route.path) for route in api.routes}
    assert ("POST", "/store_api/store/purchase") in documented
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            assert "200" in operation["responses"], (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


@dataclass
class RunningCloud:
    base_url: str
    tokens: dict[str, str]


# The tokens of the server being fuzzed; schemathesis asks the provider below for them, so it knows when
# a case carries credentials and can also send cases without them (which must get a 401).
TOKENS: dict[str, str] = {}


@schema.auth(refresh_interval=None)  # no caching: the tokens change with the server (one per database)
class BearerTokens:
    def get(self, case: Any, context: Any) -> str:
        path: str = context.operation.path
        role = "admin"
        if path.startswith("/store_api/store/"):
            role = "store"
        elif path.startswith(("/base_api/robot/", "/base_api/users/", "/base_api/destinations/")):
            role = "robot"
        # Asked once while tests are collected, before any server (and token) exists.
        return TOKENS.get(role, "no-server-yet")

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _serve(url: str, keys: Path) -> Iterator[RunningCloud]:
    """The real app on a free port, in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    app = create_app(url, keys)
    runner = web.AppRunner(app)
    port = free_port()

    async def start() -> dict[str, str]:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        context = app[CONTEXT]
        async with context.sessions() as session:
            await context.keys.rotate(session)
            store = Store(name="Buffet", description="Snacks", logo_url="/b.png", store_type=StoreType.SHOP)
            session.add(store)
            await session.commit()
            from models.base_server import Robot

            robot = Robot(robot_model_id="rb2", robot_model_name="Railbot")
            session.add(robot)
            await session.commit()
            tokens = {
                "admin": await create_token(session, Role.ADMIN),
                "store": await create_token(session, Role.STORE, store_id=store.id),
                "robot": await create_token(session, Role.ROBOT, robot_id=robot.id),
            }
        return tokens

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    tokens = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    TOKENS.clear()
    TOKENS.update(tokens)
    try:
        yield RunningCloud(base_url=f"http://127.0.0.1:{port}", tokens=tokens)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def running_cloud(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCloud]:
    folder = tmp_path_factory.mktemp("fuzz")
    database: ThrowawayDatabase | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'cloud.db'}"
    else:
        try:
            database = create_database()
        except RuntimeError as err:
            pytest.fail(str(err), pytrace=False)
        url = database.dsn
    try:
        yield from _serve(migrated(url), folder / "keys")
    finally:
        if database is not None:
            drop_database(database)


# Rules across fields, or against the clock, that JSON Schema cannot state: schema-valid bodies may still be
# refused there with a 422 (valid_until after start_date and not yet passed; train_number with date).
CROSS_FIELD_RULES = {("POST", "/base_api/admin/ticket"), ("POST", "/base_api/robot/ticket/verify")}


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_5xx_and_every_response_matches_the_document(case: Any, running_cloud: RunningCloud) -> None:
    excluded = [positive_data_acceptance] if (case.method, case.path) in CROSS_FIELD_RULES else []
    case.call_and_validate(base_url=running_cloud.base_url, excluded_checks=excluded)
