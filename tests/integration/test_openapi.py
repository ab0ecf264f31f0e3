"""/openapi.json is a valid OpenAPI 3.1 document covering every route, and the service keeps to it:
schemathesis fuzzes every operation against a running server (SQLite and PostgreSQL) and finds no 5xx
and no response outside the document."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cloud_sync.db.tables import Role
from cloud_sync.desks.face_enrolment import FaceSettings
from cloud_sync.web.app import build_api, create_app, openapi_document
from cloud_sync.web.auth import create_token
from cloud_sync.web.context import CONTEXT
from models.base_server import Robot, User
from models.store_server import Store, StoreType
from tests.support.cloud import migrated
from tests.support.face_files import MODELS_DIR
from tests.support.ports import free_port
from tests.support.postgres import ThrowawayDatabase, create_database, drop_database

DOCUMENT: dict[str, Any] = openapi_document(build_api())

# Date-times where the faults live, drawn first and often: the edges of a ticket's NumericDate, of what a
# database and every time zone can hold, and offsets that carry year 1 or 9999 out of range in UTC. The rest
# are any RFC 3339 date-time, any year, any offset. Schemathesis's own generator ignores `formatMinimum`.
EDGE_DATE_TIMES = (
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-02T00:00:00Z",
    "9999-12-30T23:59:59Z",
    "1960-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2106-02-07T06:28:15Z",
    "2106-02-07T06:28:16Z",
    "2200-01-01T00:00:00Z",
)
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
ANY_DATE_TIME = st.datetimes(timezones=OFFSETS).map(lambda value: value.isoformat())
schemathesis.openapi.format("date-time", ANY_DATE_TIME | st.sampled_from(EDGE_DATE_TIMES))
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
# Rows the server being fuzzed holds, by the body key that refers to them: a generated UUID names nothing, so
# without these every ticket or train store would stop at its 404 and never reach the code behind it.
KNOWN_IDS: dict[str, str] = {}


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
    """The real app on a free port, in a thread with its own event loop (faces enrolled with set-up's
    models)."""
    loop = asyncio.new_event_loop()
    app = create_app(url, keys, faces=FaceSettings(MODELS_DIR))
    runner = web.AppRunner(app)
    port = free_port()

    async def start() -> dict[str, str]:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        context = app[CONTEXT]
        if context.faces.unavailable is not None:
            raise RuntimeError(f"{context.faces.unavailable} (`make setup` fetches and builds them)")
        async with context.sessions() as session:
            await context.keys.rotate(session)
            store = Store(name="Buffet", description="Snacks", logo_url="/b.png", store_type=StoreType.SHOP)
            session.add(store)
            await session.commit()
            robot = Robot(robot_model_id="rb2", robot_model_name="Railbot")
            user = User(name="Anna")
            session.add_all([robot, user])
            await session.commit()
            KNOWN_IDS.update(store_id=str(store.id), robot_id=str(robot.id), user_id=str(user.id))
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


def _body_schema(method: str, path: str) -> dict[str, Any]:
    operation = DOCUMENT["paths"].get(path, {}).get(method.lower(), {})  # a method it lacks: no body
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref: str = content.get("schema", {}).get("$ref", "")
    found: dict[str, Any] = DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else {}
    return found


def _date_time_bounds(method: str, path: str) -> dict[str, list[dict[str, Any]]]:
    """{body field: its date-time schemas that state bounds}."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, prop in _body_schema(method, path).get("properties", {}).items():
        options = [o for o in [prop, *prop.get("anyOf", [])] if o.get("format") == "date-time"]
        if any("formatMinimum" in o for o in options):
            found[name] = [o for o in options if "formatMinimum" in o]
    return found


def beyond_stated_bounds(case: Any) -> list[str]:
    """Body fields whose date-time lies outside the `formatMinimum`..`formatMaximum` the document states."""
    if not isinstance(case.body, dict):
        return []
    bounds = _date_time_bounds(case.method, case.path)
    beyond = []
    for name, value in case.body.items():
        for option in bounds.get(name, []):
            if not isinstance(value, str):
                continue
            try:
                instant = dt.datetime.fromisoformat(value)
            except ValueError:
                continue  # not a date-time at all: a negative case, which the usual checks judge
            earliest = dt.datetime.fromisoformat(option["formatMinimum"])
            if instant.tzinfo is not None and not earliest <= instant <= dt.datetime.fromisoformat(
                option["formatMaximum"]
            ):
                beyond.append(name)
    return beyond


def refer_to_known_rows(case: Any) -> None:
    """Point a body's (or a path's) well-formed store, robot or user id at a row that exists."""
    for key, known in KNOWN_IDS.items():
        value = (case.path_parameters or {}).get(key)
        if isinstance(value, str) and _is_uuid(value):
            case.path_parameters[key] = known
    if not isinstance(case.body, dict):
        return
    for key, known in KNOWN_IDS.items():
        value = case.body.get(key)
        if isinstance(value, str) and _is_uuid(value):
            case.body[key] = known


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def check(case: Any, running_cloud: RunningCloud) -> None:
    refer_to_known_rows(case)
    beyond = beyond_stated_bounds(case)
    excluded = [positive_data_acceptance] if (case.method, case.path) in CROSS_FIELD_RULES or beyond else []
    response = case.call_and_validate(base_url=running_cloud.base_url, excluded_checks=excluded)
    if beyond and response.status_code not in (401, 403):
        # The generator sees `format: date-time` only; the bounds beside it must be what the service holds to.
        assert response.status_code == 422, (beyond, case.body, response.text)
        refused = {tuple(error["loc"]) for error in response.json()["detail"]}
        assert {("body", name) for name in beyond} <= refused, (beyond, response.text)


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_5xx_and_every_response_matches_the_document(case: Any, running_cloud: RunningCloud) -> None:
    check(case, running_cloud)


# Operations whose body holds a bounded date-time get more examples, so that the edges above are drawn.
BOUNDED_DATE_BODIES = sorted(
    path
    for path, operations in DOCUMENT["paths"].items()
    if "post" in operations and _date_time_bounds("POST", path)
)


@schema.include(method="POST", path=BOUNDED_DATE_BODIES).parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_date_times_beyond_the_stated_bounds_are_422(case: Any, running_cloud: RunningCloud) -> None:
    check(case, running_cloud)


def test_the_bounded_date_bodies_are_the_ticket_and_the_train_store() -> None:
    assert BOUNDED_DATE_BODIES == ["/base_api/admin/ticket", "/base_api/admin/train_store"]
