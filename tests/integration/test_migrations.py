"""Alembic's migrations build exactly the schema the models describe, undo cleanly, and the service
refuses a database that is behind."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Connection

from cloud_sync.db.database import SCHEMA, create_engine
from cloud_sync.db.migrate import alembic_config, head_revision, require_current
from cloud_sync.db.tables import CLOUD_METADATA
from cloud_sync.errors import CloudSyncError
from cloud_sync.sync import gaps
from models.base_server import BASE_METADATA
from tests.support.cloud import in_thread, migrated

AT = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, list(SCHEMA)))  # type: ignore[arg-type]


async def test_migrated_schema_equals_the_models(cloud_db_url: str) -> None:
    engine = create_engine(cloud_db_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await engine.dispose()
    assert differences == []
    assert version == head_revision()


async def test_downgrade_removes_everything_and_upgrade_restores_it(cloud_db_url: str) -> None:
    in_thread(lambda: command.downgrade(alembic_config(cloud_db_url), "base"))
    engine = create_engine(cloud_db_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
            if engine.dialect.name == "postgresql":
                types = (
                    await connection.execute(text("SELECT typname FROM pg_type WHERE typtype = 'e'"))
                ).all()
                assert types == []
        assert set(tables) <= {"alembic_version"}
        migrated(cloud_db_url)
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_a_database_behind_the_code_is_refused(cloud_db_url: str) -> None:
    engine = create_engine(cloud_db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        expected = rf"at revision 0001, the code needs {head_revision()}: run `cloud-sync migrate"
        with pytest.raises(CloudSyncError, match=expected):
            await require_current(engine, cloud_db_url)
    finally:
        await engine.dispose()


async def test_a_database_ahead_of_the_code_is_refused_without_sending_to_migrate(cloud_db_url: str) -> None:
    engine = create_engine(cloud_db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        # `cloud-sync migrate` refuses such a database too: sending the user to it would go round in circles.
        with pytest.raises(
            CloudSyncError, match=r"at revision 9999, which this cloud-sync does not know"
        ) as err:
            await require_current(engine, cloud_db_url)
        assert "cloud-sync migrate" not in str(err.value)
    finally:
        await engine.dispose()


async def test_0004_fills_the_seq_runs_from_the_events_already_applied(cloud_db_url: str) -> None:
    in_thread(lambda: command.downgrade(alembic_config(cloud_db_url), "0003"))
    robot = uuid.uuid4()
    engine = create_engine(cloud_db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(BASE_METADATA.tables["robots"]).values(
                    id=robot, robot_model_id="rb2", robot_model_name="R"
                )
            )
            await connection.execute(
                insert(CLOUD_METADATA.tables["sync_applied_events"]),
                [
                    {"event_id": uuid.uuid4(), "robot_id": robot, "seq": seq, "batch_id": uuid.uuid4(),
                     "type": "purchase", "data": {}, "robot_time": AT, "applied_at": AT}
                    for seq in (1, 2, 3, 7, 8, 12)
                ],
            )  # fmt: skip
        migrated(cloud_db_url)
        async with engine.connect() as connection:
            report = await gaps.report(connection)
    finally:
        await engine.dispose()
    assert [(r.robot_id, r.last_seq, r.missing, r.gaps) for r in report.robots] == [
        (robot, 12, 6, [[4, 6], [9, 11]])
    ]


async def test_0005_adds_the_face_tables_and_going_back_drops_only_them(cloud_db_url: str) -> None:
    user = uuid.uuid4()
    engine = create_engine(cloud_db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(BASE_METADATA.tables["users"]).values(id=user, name="Anna"))
            face = {
                "id": uuid.uuid4(),
                "user_id": user,
                "detector": "yunet",
                "eye_distance": 80.0,
                "yaw_degrees": 1.0,
                "roll_degrees": 2.0,
                "brightness": 120.0,
                "sharpness": 300.0,
            }
            await connection.execute(insert(CLOUD_METADATA.tables["faces"]).values(**face))
            await connection.execute(
                insert(CLOUD_METADATA.tables["face_embeddings"]).values(
                    id=uuid.uuid4(), face_id=face["id"], embedder="sface", vector=bytes(512)
                )
            )
        in_thread(lambda: command.downgrade(alembic_config(cloud_db_url), "0004"))
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
            users = (await connection.execute(text("SELECT count(*) FROM users"))).scalar_one()
        assert not {"faces", "face_embeddings"} & tables
        assert "users" in tables
        assert users == 1
        migrated(cloud_db_url)
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            faces = (await connection.execute(text("SELECT count(*) FROM faces"))).scalar_one()
        assert faces == 0
    finally:
        await engine.dispose()
