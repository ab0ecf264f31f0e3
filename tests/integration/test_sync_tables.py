"""The sync tables, as migrated, on SQLite and PostgreSQL: rows read back with their types, the change log's
ids only grow (even after the newest entry is deleted), and an applied event id is taken once."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.database import create_engine, session_factory
from cloud_sync.db.tables import (
    RobotCredential,
    SyncAppliedEvent,
    SyncChange,
    SyncConflict,
    SyncDeadLetter,
    SyncRobotState,
)
from models.base_server import Robot


@pytest.fixture
async def session(cloud_db_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(cloud_db_url)
    try:
        async with session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


async def _robot(session: AsyncSession) -> uuid.UUID:
    robot = Robot(robot_model_id="rb-2", robot_model_name="RailBot 2")
    session.add(robot)
    await session.commit()
    return robot.id


async def test_rows_read_back_with_their_types(session: AsyncSession) -> None:
    robot_id = await _robot(session)
    event_id, batch_id = uuid.uuid4(), uuid.uuid4()
    seen = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)
    session.add(
        SyncAppliedEvent(
            event_id=event_id,
            robot_id=robot_id,
            seq=2**40,
            batch_id=batch_id,
            type="purchase",
            data={"n": 1},
            robot_time=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        )
    )
    session.add(
        SyncDeadLetter(
            robot_id=None,
            topic="railbot/v1/robots/x/up/batch",
            reason="not CBOR",
            detail="byte 0",
            payload=b"\x00\xff" * 4,
        )
    )
    session.add(SyncConflict(robot_id=robot_id, event_id=event_id, kind="ticket_used_twice", detail="t"))
    session.add(RobotCredential(robot_id=robot_id, username=f"robot-{robot_id}", password_hash="$7$101$a$b"))
    session.add(SyncRobotState(robot_id=robot_id, last_seq=41, last_batch_at=seen, clock_skew_ms=-7_200_000))
    await session.commit()
    session.expunge_all()

    applied = await session.get(SyncAppliedEvent, event_id)
    assert applied is not None
    assert (applied.robot_id, applied.seq, applied.batch_id, applied.data) == (
        robot_id,
        2**40,
        batch_id,
        {"n": 1},
    )
    assert applied.applied_at.tzinfo is not None
    [letter] = (await session.exec(select(SyncDeadLetter))).all()
    assert (letter.robot_id, letter.reason, letter.payload) == (None, "not CBOR", b"\x00\xff" * 4)
    [conflict] = (await session.exec(select(SyncConflict))).all()
    assert (conflict.robot_id, conflict.event_id, conflict.kind) == (robot_id, event_id, "ticket_used_twice")
    credential = await session.get(RobotCredential, robot_id)
    assert credential is not None
    assert credential.username == f"robot-{robot_id}"
    state = await session.get(SyncRobotState, robot_id)
    assert state is not None
    assert (state.last_seq, state.last_batch_at, state.clock_skew_ms) == (41, seen, -7_200_000)


async def test_an_event_id_is_applied_once(session: AsyncSession) -> None:
    robot_id = await _robot(session)
    event_id = uuid.uuid4()
    session.add(applied(event_id, robot_id))
    await session.commit()
    session.add(applied(event_id, robot_id))
    with pytest.raises(IntegrityError):
        await session.commit()


async def test_change_ids_only_grow(session: AsyncSession) -> None:
    async def append(row_key: str) -> int:
        change = SyncChange(
            scope="train:742:2026-11-27",
            table_name="tickets",
            row_key=row_key,
            op="upsert",
            value={"used": False, "wagon": 3},
        )
        session.add(change)
        await session.commit()
        assert change.change_id is not None
        return change.change_id

    first, second = await append("a"), await append("b")
    assert second > first
    # Compaction deletes the newest entry too; its id must not come back, or a robot past it would skip.
    await session.exec(delete(SyncChange).where(col(SyncChange.change_id) == second))
    await session.commit()
    third = await append("c")
    assert third > second
    session.expunge_all()
    rows = (
        await session.exec(
            select(SyncChange)
            .where(SyncChange.scope == "train:742:2026-11-27", col(SyncChange.change_id) > first)
            .order_by(col(SyncChange.change_id))
        )
    ).all()
    assert [(row.change_id, row.row_key, row.value) for row in rows] == [
        (third, "c", {"used": False, "wagon": 3})
    ]
    assert rows[0].changed_at.tzinfo is not None


def applied(event_id: uuid.UUID, robot_id: uuid.UUID) -> SyncAppliedEvent:
    return SyncAppliedEvent(
        event_id=event_id,
        robot_id=robot_id,
        seq=1,
        batch_id=uuid.uuid4(),
        type="ticket.checked",
        data={},
        robot_time=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
    )
