"""Fixtures shared by every test: throw-away SQLite files, PostgreSQL databases and Mosquitto brokers.

A missing service fails the test with a message that says how to start it; nothing is skipped.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_sync.db.tables import Role
from cloud_sync.web.app import create_app
from cloud_sync.web.auth import create_token
from cloud_sync.web.context import CONTEXT
from tests.support.cloud import Cloud, migrated
from tests.support.mosquitto import MosquittoBroker
from tests.support.postgres import ThrowawayDatabase, create_database, drop_database

# Fixtures defined beside their helpers: start_simulator (the MCU simulator process).
pytest_plugins = ["tests.support.simulator"]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[Any]]]:
    """Processes a test starts (append them); any still running at its end is killed."""
    started: list[subprocess.Popen[Any]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """The path of a SQLite database file that does not exist yet, in a folder removed after the test."""
    return tmp_path / "test.db"


@pytest.fixture
def postgres_db() -> Iterator[ThrowawayDatabase]:
    """An empty PostgreSQL database, dropped after the test."""
    try:
        database = create_database()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield database
    finally:
        drop_database(database)


MosquittoFactory = Callable[..., MosquittoBroker]


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Start private brokers: `mosquitto_factory(users={name: password}, acl="...")`; all stopped after."""
    brokers: list[MosquittoBroker] = []

    def start(users: dict[str, str], acl: str, extra_config: str = "") -> MosquittoBroker:
        broker = MosquittoBroker(
            directory=tmp_path / f"mosquitto-{len(brokers)}", users=users, acl=acl, extra_config=extra_config
        )
        brokers.append(broker)
        try:
            broker.start()
        except RuntimeError as err:
            pytest.fail(str(err), pytrace=False)
        return broker

    yield start
    for broker in brokers:
        broker.kill()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> MosquittoBroker:
    """A private broker with one user, `test`, allowed everything."""
    return mosquitto_factory(users={"test": secrets.token_urlsafe(12)}, acl="user test\ntopic readwrite #\n")


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A cloud database migrated to the newest revision, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return migrated(f"sqlite:///{tmp_path / 'cloud.db'}")
    database: ThrowawayDatabase = request.getfixturevalue("postgres_db")
    return migrated(database.dsn)


@pytest.fixture
async def cloud(cloud_db_url: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    """The cloud service on a test client, with a signing key and an admin token."""
    app = create_app(cloud_db_url, tmp_path / "keys")
    async with TestClient(TestServer(app)) as client:
        context = app[CONTEXT]
        async with context.sessions() as session:
            await context.keys.rotate(session)
            token = await create_token(session, Role.ADMIN)
        yield Cloud(client=client, admin={"Authorization": f"Bearer {token}"})
