"""Down-sync over a real Mosquitto (fault 7 of issue 4): the cloud's change log reaches the robot's copies.

The cloud's writes go through its own sessions (the change log is filled by them, as the APIs' writes are);
the down-sync service and the robot's link and DownSync run in this test's event loop, on both databases.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from sqlmodel import select as sqlmodel_select

from cloud_sync.db import changes
from cloud_sync.db.database import create_engine, session_factory
from cloud_sync.db.tables import RobotAssignment, TicketRevocation
from cloud_sync.desks.signing import KeyRing
from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.downsync import DownSyncService
from models.base_server import BASE_METADATA, Robot, Ticket
from models.sync_changes import Change, Changes
from robot_agent.store import replica
from robot_agent.store.database import open_store
from robot_agent.sync.downsync import ASK_MAX_WAIT_S, DownSync
from robot_agent.sync.mqtt import RobotLink
from tests.conftest import MosquittoFactory
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT, topic, watch
from tests.support.mosquitto import MosquittoBroker
from tests.support.sync import add_tickets as support_add_tickets
from tests.support.tasks import eventually, stop

TRAIN = 742
TICKETS_TABLE = BASE_METADATA.tables["tickets"]
TICKETS = 100_000
PASSENGERS = 1_000
DEPARTURE = dt.datetime(2026, 11, 30, 18, 40, tzinfo=dt.UTC)


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MosquittoBroker:
    return mosquitto_factory(users=PASSWORDS, acl=ACL)


@pytest.fixture
async def cloud(cloud_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(cloud_db_url)
    async with session_factory(engine)() as session:
        session.add(Robot(id=ROBOT, robot_model_id="rb2", robot_model_name="Railbot 2"))
        await session.flush()
        session.add(
            RobotAssignment(robot_id=ROBOT, train_number=TRAIN, train_date=dt.datetime.now(dt.UTC).date())
        )
        await session.commit()
    yield engine
    await engine.dispose()


async def add_tickets(engine: AsyncEngine, count: int, train: int = TRAIN) -> list[uuid.UUID]:
    return await support_add_tickets(engine, count, train, PASSENGERS, DEPARTURE)


def robot_rows(store: Engine, table: str) -> int:
    with store.connect() as conn:
        return replica.count(conn, table)


async def until(what: str, check: Callable[[], bool], within_s: float) -> None:
    await eventually(check, what, within_s, poll_s=0.2, in_thread=True)


class Robotside:
    def __init__(self, broker: MosquittoBroker, path: Path) -> None:
        self.store = open_store(path)
        self.link = RobotLink(ROBOT, broker.url, str(ROBOT), PASSWORDS[str(ROBOT)], keepalive_s=5)
        self.down = DownSync(self.link, self.store)


async def running(cloud: AsyncEngine, broker: MosquittoBroker, robot: Robotside) -> list[asyncio.Task[None]]:
    service = DownSyncService(
        cloud, BrokerLogin(broker.url, "cloud", PASSWORDS["cloud"], "downsync-test"), poll_s=0.2
    )
    tasks = [asyncio.create_task(service.run(), name="down-sync service")]
    async with asyncio.timeout(10):
        await service.subscribed.wait()
    await robot.link.start()
    tasks.append(asyncio.create_task(robot.down.run(), name="robot down-sync"))
    return tasks


async def test_100000_tickets_reach_the_robot_and_a_revocation_reaches_it_online(
    cloud: AsyncEngine, broker: MosquittoBroker, tmp_path: Path
) -> None:
    ids = await add_tickets(cloud, TICKETS)
    await add_tickets(cloud, 50, train=100)  # another train's: never sent to this robot
    robot = Robotside(broker, tmp_path / "robot.db")
    tasks = await running(cloud, broker, robot)
    try:
        await until(
            f"{TICKETS} tickets on the robot", lambda: robot_rows(robot.store, "tickets") >= TICKETS, 240
        )
        assert robot_rows(robot.store, "tickets") == TICKETS
        assert robot_rows(robot.store, "users") == PASSENGERS
        assert robot_rows(robot.store, "robot_assignments") == 1

        async with session_factory(cloud)() as session:
            session.add(TicketRevocation(ticket_id=ids[12_345], reason="refunded"))
            await session.commit()
        await until(
            "the revocation on the robot", lambda: robot_rows(robot.store, "ticket_revocations") == 1, 30
        )
        with robot.store.connect() as conn:
            cursors = replica.cursors(conn)
        async with cloud.connect() as conn:
            newest = await conn.run_sync(changes.last_change_id)
        assert cursors[f"train:{TRAIN}"] == newest, "the train's cursor is the log's newest change"
    finally:
        await stop(*tasks)
        await robot.link.close()


async def test_a_robot_behind_a_compacted_log_gets_a_snapshot_that_drops_what_the_cloud_deleted(
    cloud: AsyncEngine, broker: MosquittoBroker, tmp_path: Path
) -> None:
    ids = await add_tickets(cloud, 1_200)
    robot = Robotside(broker, tmp_path / "robot.db")
    tasks = await running(cloud, broker, robot)
    try:
        await until("1,200 tickets on the robot", lambda: robot_rows(robot.store, "tickets") == 1_200, 60)
    finally:
        await stop(*tasks)
        await robot.link.close()

    # While the robot is away: tickets deleted and changed, then the log compacted past its cursor.
    async with session_factory(cloud)() as session:
        for ticket_id in ids[:200]:
            await session.delete(await session.get(Ticket, ticket_id))
        await session.commit()
    async with cloud.begin() as conn:
        await conn.execute(update(TICKETS_TABLE).where(TICKETS_TABLE.c.id == ids[500]).values(used=True))
        await conn.run_sync(changes.compact, await conn.run_sync(changes.last_change_id))
    # And garbage queued for it on its topic: refused, and the robot carries on.
    cloud_client = watch(broker)
    cloud_client.publish(topic(ROBOT, "down/changes"), b"\xff not cbor")

    robot = Robotside(broker, tmp_path / "robot.db")
    tasks = await running(cloud, broker, robot)
    try:
        await until("the snapshot's 1,000 tickets", lambda: robot_rows(robot.store, "tickets") == 1_000, 60)
        await until("the snapshot's cursor", lambda: _cursors(robot.store).get(f"train:{TRAIN}", 0) > 0, 10)
        with robot.store.connect() as conn:
            used = conn.execute(
                select(replica.table("tickets").c.used).where(replica.table("tickets").c.id == ids[500])
            ).scalar()
        assert used is True, "a change made by Core SQL and never logged still arrives in a snapshot"
        assert robot.down.refused == 1
    finally:
        await stop(*tasks)
        await robot.link.close()


def test_a_message_that_skips_ahead_is_not_applied(tmp_path: Path) -> None:
    store = open_store(tmp_path / "robot.db")
    value = {"id": str(uuid.uuid4()), "name": "Anna"}
    first = Changes("train:1", "log", 0, 5, (Change(5, "users", "upsert", value["id"], value),))
    gap = Changes("train:1", "log", 9, 12, (Change(12, "users", "delete", value["id"], None),))
    with store.begin() as conn:
        assert replica.apply_log(conn, first) == 1
        assert replica.apply_log(conn, first) == 0, "applied twice: nothing more"
        assert replica.apply_log(conn, gap) is None
        assert replica.cursors(conn) == {"train:1": 5}
    assert robot_rows(store, "users") == 1


def test_rows_read_back_as_the_robots_models_type_them(tmp_path: Path) -> None:
    store = open_store(tmp_path / "robot.db")
    ticket = uuid.uuid4()
    value = {
        "id": str(ticket),
        "user_id": str(uuid.uuid4()),
        "train_number": TRAIN,
        "wagon_number": 3,
        "place_number": 17,
        "date": "2026-11-30T21:40:00+03:00",
        "station_id": "MSK",
        "destination_id": "SPB",
        "start_date": "2026-11-30T18:40:00+00:00",
        "code": "T1",
        "used": False,
    }
    with store.begin() as conn:
        replica.apply_log(
            conn, Changes("train:742", "log", 0, 1, (Change(1, "tickets", "upsert", str(ticket), value),))
        )
        tickets = replica.table("tickets")
        row = conn.execute(select(tickets).where(tickets.c.id == ticket)).one()
    assert row.date == DEPARTURE  # 21:40+03:00 is 18:40 UTC
    assert row.date.tzinfo is not None
    assert row.user_id == uuid.UUID(str(value["user_id"]))
    assert row.used is False
    assert row.sync_scope == "train:742"


async def test_a_robot_moved_to_another_train_drops_the_old_trains_rows(
    cloud: AsyncEngine, broker: MosquittoBroker, tmp_path: Path
) -> None:
    await add_tickets(cloud, 300)
    other = await add_tickets(cloud, 40, train=100)
    robot = Robotside(broker, tmp_path / "robot.db")
    tasks = await running(cloud, broker, robot)
    try:
        await until("train 742's tickets", lambda: robot_rows(robot.store, "tickets") == 300, 30)
        async with session_factory(cloud)() as session:  # reassigned while online
            query = sqlmodel_select(RobotAssignment).where(col(RobotAssignment.robot_id) == ROBOT)
            old = (await session.exec(query)).one()
            await session.delete(old)
            await session.flush()
            session.add(
                RobotAssignment(robot_id=ROBOT, train_number=100, train_date=dt.datetime.now(dt.UTC).date())
            )
            await session.commit()
        await until("only train 100's tickets", lambda: _ticket_ids(robot.store) == set(other), 30)
        await until("no cursor for train 742", lambda: f"train:{TRAIN}" not in _cursors(robot.store), 10)
        assert robot_rows(robot.store, "robot_assignments") == 1
    finally:
        await stop(*tasks)
        await robot.link.close()

    # And a robot that comes back still holding a train it lost is told to drop it on its request.
    with robot.store.begin() as conn:
        replica.set_cursor(conn, "train:555", 7)
    robot = Robotside(broker, tmp_path / "robot.db")
    tasks = await running(cloud, broker, robot)
    try:
        await until("train 555 forgotten", lambda: "train:555" not in _cursors(robot.store), 10)
    finally:
        await stop(*tasks)
        await robot.link.close()


def _ticket_ids(store: Engine) -> set[uuid.UUID]:
    tickets = replica.table("tickets")
    with store.connect() as conn:
        return set(conn.execute(select(tickets.c.id)).scalars())


def _cursors(store: Engine) -> dict[str, int]:
    with store.connect() as conn:
        return replica.cursors(conn)


async def _keys_and_tickets(cloud: AsyncEngine, keys_dir: Path, tickets: int) -> None:
    async with session_factory(cloud)() as session:
        await KeyRing(keys_dir).rotate(session)
        await session.commit()
    await add_tickets(cloud, tickets)


def _service(cloud: AsyncEngine, broker: MosquittoBroker) -> DownSyncService:
    login = BrokerLogin(broker.url, "cloud", PASSWORDS["cloud"], "downsync-order-test")
    return DownSyncService(cloud, login, poll_s=0.2)


def _holds(robot: Robotside, tickets: int) -> Callable[[], bool]:
    return lambda: (
        robot_rows(robot.store, "signing_keys") == 1 and robot_rows(robot.store, "tickets") == tickets
    )


# Issue 13, item 6: the robot converges within ASK_MAX_WAIT_S (plus the answer's time) of the cloud's
# down-sync being up, whichever starts first. Before, a request made while nobody listened was dropped by the
# broker and never made again until a reconnect: the robot stayed empty.
CONVERGED_WITHIN_S = ASK_MAX_WAIT_S + 10


async def test_a_robot_up_before_the_clouds_down_sync_asks_again_until_answered(
    cloud: AsyncEngine, broker: MosquittoBroker, tmp_path: Path
) -> None:
    await _keys_and_tickets(cloud, tmp_path / "keys", 300)
    robot = Robotside(broker, tmp_path / "robot.db")
    await robot.link.start()
    tasks = [asyncio.create_task(robot.down.run(), name="robot down-sync")]
    try:
        # Asked twice with nobody subscribed to up/sync: both requests dropped by the broker.
        await eventually(lambda: robot.down.requests >= 2, "two requests", 10)
        assert robot.down.answers == 0
        service = _service(cloud, broker)
        tasks.append(asyncio.create_task(service.run(), name="down-sync service"))
        async with asyncio.timeout(10):
            await service.subscribed.wait()
        started = asyncio.get_running_loop().time()
        await until("the keys and 300 tickets on the robot", _holds(robot, 300), CONVERGED_WITHIN_S)
        print(f"converged {asyncio.get_running_loop().time() - started:.1f} s after down-sync was up")
        await eventually(lambda: robot.down.answers >= 1, "the answer", 10)
        # Online from its answered request: a change made now is pushed.
        await add_tickets(cloud, 5)
        await until("5 more tickets", _holds(robot, 305), 10)
    finally:
        await stop(*tasks)
        await robot.link.close()


async def test_a_robot_up_after_the_clouds_down_sync_is_answered_and_asking_again_applies_nothing_twice(
    cloud: AsyncEngine, broker: MosquittoBroker, tmp_path: Path
) -> None:
    await _keys_and_tickets(cloud, tmp_path / "keys", 300)
    robot = Robotside(broker, tmp_path / "robot.db")
    tasks = await running(cloud, broker, robot)
    try:
        await until("the keys and 300 tickets on the robot", _holds(robot, 300), CONVERGED_WITHIN_S)
        await eventually(lambda: robot.down.answers == 1, "the answer", 10)
        applied, cursors = robot.down.applied_changes, _cursors(robot.store)
        await robot.down.ask()  # the same cursors again, as a robot whose answer went missing asks
        await robot.down.ask()
        # An answer ends with `answered`, after its changes: both replies are in once both are counted.
        await eventually(lambda: robot.down.answers == 3, "both answers", 10)
        assert robot.down.applied_changes == applied, "an answer to a repeated request applied changes twice"
        assert _cursors(robot.store) == cursors
        assert robot_rows(robot.store, "tickets") == 300
    finally:
        await stop(*tasks)
        await robot.link.close()


async def test_a_down_sync_restarted_while_the_robot_stays_online_has_it_ask_again(
    cloud: AsyncEngine, broker: MosquittoBroker, tmp_path: Path
) -> None:
    """The third order: robot and cloud up, then the cloud's down-sync restarts (it keeps no cursors). The
    robot's retained "online" reaches the new service, which sends `ask`; the robot asks and gets pushes
    again. Before, it got nothing more until it reconnected."""
    await _keys_and_tickets(cloud, tmp_path / "keys", 100)
    robot = Robotside(broker, tmp_path / "robot.db")
    tasks = await running(cloud, broker, robot)
    try:
        await until("100 tickets", _holds(robot, 100), CONVERGED_WITHIN_S)
        await stop(tasks.pop(0))  # the first service
        service = _service(cloud, broker)
        tasks.append(asyncio.create_task(service.run(), name="down-sync service, restarted"))
        async with asyncio.timeout(10):
            await service.subscribed.wait()
        await add_tickets(cloud, 5)
        await until("5 more tickets, pushed by the new service", _holds(robot, 105), CONVERGED_WITHIN_S)
        assert robot.down.requests == 2
    finally:
        await stop(*tasks)
        await robot.link.close()


def test_hotels_and_attractions_arrive_in_the_all_scope_and_are_found_by_destination(tmp_path: Path) -> None:
    store = open_store(tmp_path / "robot.db")
    hotel, attraction = uuid.uuid4(), uuid.uuid4()
    place = {"description": None, "logo_url": None, "destination_id": "SPB"}
    changes = (
        Change(1, "hotels", "upsert", str(hotel), {"id": str(hotel), "name": "Astoria", **place}),
        Change(
            2, "attractions", "upsert", str(attraction), {"id": str(attraction), "name": "Hermitage", **place}
        ),
    )
    with store.begin() as conn:
        replica.apply_log(conn, Changes("all", "log", 0, 2, changes))
        found = {
            name: [
                r.name
                for r in conn.execute(
                    select(replica.table(name)).where(replica.table(name).c.destination_id == "SPB")
                )
            ]
            for name in ("hotels", "attractions")
        }
    assert found == {"hotels": ["Astoria"], "attractions": ["Hermitage"]}


def test_a_task_of_the_robots_sale_arrives_in_its_scope_with_its_conflicts(tmp_path: Path) -> None:
    """A task comes down in the robot's own scope, its `additional_data` (the robot, the conflicts its sale
    met) kept as JSON; a later change (the store marked it ready) replaces it."""
    store = open_store(tmp_path / "robot.db")
    task = uuid.uuid4()
    scope = f"robot:{ROBOT}"
    value = {
        "id": str(task),
        "store_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "purchase_id": str(uuid.uuid4()),
        "is_ready": False,
        "additional_data": {"robot_id": str(ROBOT), "conflicts": [{"kind": "oversold", "detail": "tea"}]},
    }
    ready = {**value, "is_ready": True}
    with store.begin() as conn:
        for n, row_value in ((1, value), (2, ready)):
            change = Change(n, "tasks", "upsert", str(task), row_value)
            replica.apply_log(conn, Changes(scope, "log", n - 1, n, (change,)))
        row = conn.execute(select(replica.table("tasks"))).one()
    assert row.id == task
    assert row.is_ready is True
    assert row.sync_scope == scope
    assert row.additional_data["conflicts"] == [{"kind": "oversold", "detail": "tea"}]


def test_tasks_that_come_are_told_once_after_the_commit(tmp_path: Path) -> None:
    """Down-sync tells the agent of the tasks a message brought (its live "order" events), once: a log
    message sent again brings nothing new."""
    store = open_store(tmp_path / "robot.db")
    down = DownSync(cast(Any, None), store)
    told: list[list[dict[str, Any]]] = []
    down.tasks_changed = told.append
    task = str(uuid.uuid4())
    value = {
        "id": task,
        "store_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "purchase_id": str(uuid.uuid4()),
        "is_ready": True,
        "additional_data": {"robot_id": str(ROBOT), "conflicts": []},
    }
    message = Changes(f"robot:{ROBOT}", "log", 0, 1, (Change(1, "tasks", "upsert", task, value),))
    assert down._apply(message) == 1
    assert down._apply(message) == 0
    assert told == [[value]]
