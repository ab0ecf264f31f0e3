"""The cloud's MQTT services (ingest, down-sync) against a real Mosquitto that is down or refuses them: one
WARNING per outage naming the reason, as the robot's link does, and an INFO saying how long it lasted when
the broker is back (issue 13, item 13)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_sync.db.database import create_engine
from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.downsync import DownSyncService
from cloud_sync.sync.ingest import Ingest
from cloud_sync.sync.ingest_worker import IngestWorker
from tests.conftest import MosquittoFactory
from tests.integration.test_robot_link import ACL, PASSWORDS
from tests.support.cloud import migrated
from tests.support.mosquitto import MosquittoBroker
from tests.support.tasks import eventually, stop

Run = Callable[[AsyncEngine, BrokerLogin], Coroutine[Any, Any, None]]


async def run_ingest(engine: AsyncEngine, login: BrokerLogin) -> None:
    ingest = Ingest(engine)
    try:
        await IngestWorker(ingest, login).run()
    finally:
        await ingest.close()


async def run_down_sync(engine: AsyncEngine, login: BrokerLogin) -> None:
    await DownSyncService(engine, login).run()


# Each service and the logger it logs its connection under.
SERVICES: dict[str, tuple[Run, str]] = {
    "ingest": (run_ingest, "cloud_sync.sync.ingest_worker"),
    "down-sync": (run_down_sync, "cloud_sync.sync.downsync"),
}
# paho's waits between attempts double from 1 s to 5 s; a refused TCP connect costs the first one a second
# more (measured: attempts at 0, 3, 7 and 12 s with no broker; 0, 1, 3 and 7 s when the broker refuses).
ATTEMPTS_WITHIN_S = 8.0
BACK_WITHIN_S = 8.0


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MosquittoBroker:
    return mosquitto_factory(users=PASSWORDS, acl=ACL)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated(f"sqlite:///{tmp_path / 'cloud.db'}"))
    yield engine
    await engine.dispose()


def lines(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == level]


async def attempts(caplog: pytest.LogCaptureFixture, logger: str, count: int) -> None:
    """Wait until `count` connection attempts have failed: the first is the WARNING, the others DEBUG."""
    await eventually(
        lambda: (
            bool(lines(caplog, logger, logging.WARNING))
            and sum("still not connected" in line for line in lines(caplog, logger, logging.DEBUG))
            >= count - 1
        ),
        f"{count} failed connection attempts",
        ATTEMPTS_WITHIN_S,
        poll_s=0.1,
    )


@pytest.mark.parametrize("service", SERVICES)
async def test_a_broker_that_is_down_is_one_warning_naming_the_reason_and_an_info_when_back(
    service: str, broker: MosquittoBroker, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    run, logger = SERVICES[service]
    caplog.set_level(logging.DEBUG, logger=logger)
    broker.stop()  # its port: one where no broker listens
    login = BrokerLogin(broker.url, "cloud", PASSWORDS["cloud"], f"{service}-outage-test")
    task = asyncio.create_task(run(engine, login), name=service)
    try:
        await attempts(caplog, logger, 2)
        where = f"{broker.host}:{broker.port}"
        assert lines(caplog, logger, logging.WARNING) == [
            f"{service} client={login.client_id} cannot connect to the broker at {where}: "
            "connection refused (no broker listening) (retrying every 1-5 s)"
        ]
        broker.start()
        await eventually(
            lambda: any("back on the broker" in line for line in lines(caplog, logger, logging.INFO)),
            "an INFO that the broker is back",
            BACK_WITHIN_S,
            poll_s=0.1,
        )
        back = [line for line in lines(caplog, logger, logging.INFO) if "back on the broker" in line]
        assert len(back) == 1, back
        assert back[0].startswith(f"{service} client={login.client_id} back on the broker at "), back
        assert " s down" in back[0], back
        assert len(lines(caplog, logger, logging.WARNING)) == 1
        broker.stop()  # a connection that was up and drops: its loss is said once
        await eventually(
            lambda: any(line.endswith(" connection lost") for line in lines(caplog, logger, logging.INFO)),
            "an INFO that the connection was lost",
            BACK_WITHIN_S,
            poll_s=0.1,
        )
    finally:
        await stop(task)


@pytest.mark.parametrize("service", SERVICES)
async def test_wrong_credentials_are_one_warning_naming_the_brokers_refusal(
    service: str, broker: MosquittoBroker, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    run, logger = SERVICES[service]
    caplog.set_level(logging.DEBUG, logger=logger)
    login = BrokerLogin(broker.url, "cloud", "not the password", f"{service}-refused-test")
    task = asyncio.create_task(run(engine, login), name=service)
    try:
        await attempts(caplog, logger, 3)
    finally:
        await stop(task)
    warnings = lines(caplog, logger, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "refused the connection: not authorized (0x87)" in warnings[0], warnings
