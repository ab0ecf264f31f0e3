"""Alembic's migrations build exactly the schema the models describe, undo cleanly, and the service
refuses a database that is behind."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import LargeBinary, String, Uuid, column, insert, inspect, select, text
from sqlalchemy import table as sa_table
from sqlalchemy.engine import Connection

from cloud_sync.db import changes
from cloud_sync.db.database import SCHEMA, create_engine
from cloud_sync.db.migrate import alembic_config, head_revision, require_current
from cloud_sync.db.tables import CLOUD_METADATA
from cloud_sync.errors import CloudSyncError
from cloud_sync.sync import gaps
from models.base_server import BASE_METADATA
from tests.support.cloud import in_thread, migrated

AT = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
FIRST, SECOND = bytes(range(256)) * 2, b"\x00\x01" * 256  # two 128-d float32 vectors' bytes


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
                    id=uuid.uuid4(), face_id=face["id"], user_id=user, embedder="sface", vector=bytes(512)
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


async def test_0006_copies_each_embeddings_user_and_logs_the_tokens_and_embeddings_never_logged(
    cloud_db_url: str,
) -> None:
    """Robots holding cursors read only the log: what existed before tokens and embeddings replicated is
    logged by the migration, in the scopes the code would have used, exactly as a snapshot carries it."""
    in_thread(lambda: command.downgrade(alembic_config(cloud_db_url), "0005"))
    table = {**BASE_METADATA.tables, **CLOUD_METADATA.tables}
    anna, boris = uuid.uuid4(), uuid.uuid4()
    on_742, on_100 = uuid.uuid4(), uuid.uuid4()
    face, lone_face = uuid.uuid4(), uuid.uuid4()
    engine = create_engine(cloud_db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(table["users"]), [{"id": anna, "name": "Anna"}, {"id": boris, "name": "Boris"}]
            )
            ticket = {"wagon_number": 1, "place_number": 2, "date": AT, "station_id": "MSK",
                      "destination_id": "SPB", "start_date": AT, "code": "C", "user_id": anna}  # fmt: skip
            await connection.execute(
                insert(table["tickets"]),
                [
                    {**ticket, "id": on_742, "train_number": 742},
                    {**ticket, "id": on_100, "train_number": 100},
                ],
            )
            await connection.execute(
                insert(table["signing_keys"]).values(kid="00" * 8, public_key="11" * 32, created_at=AT)
            )
            await connection.execute(
                insert(table["ticket_tokens"]),
                [
                    {"ticket_id": t, "kid": "00" * 8, "token": f"RB1:{t}", "issued_at": AT, "expires_at": AT}
                    for t in (on_742, on_100)
                ],
            )
            await connection.execute(
                insert(table["ticket_revocations"]).values(ticket_id=on_100, reason="refund", revoked_at=AT)
            )
            measures = {"detector": "yunet", "eye_distance": 80.0, "yaw_degrees": 1.0, "roll_degrees": 2.0,
                        "brightness": 120.0, "sharpness": 300.0}  # fmt: skip
            await connection.execute(
                insert(table["faces"]),
                [{"id": face, "user_id": anna, **measures}, {"id": lone_face, "user_id": boris, **measures}],
            )
            # As 0005 had them: no user_id.
            old_embeddings = sa_table(
                "face_embeddings",
                column("id", Uuid()),
                column("face_id", Uuid()),
                column("embedder", String()),
                column("vector", LargeBinary()),
            )
            await connection.execute(
                insert(old_embeddings),
                [
                    {"id": uuid.uuid4(), "face_id": face, "embedder": "sface", "vector": FIRST},
                    {"id": uuid.uuid4(), "face_id": face, "embedder": "dlib_resnet_v1", "vector": SECOND},
                    {"id": uuid.uuid4(), "face_id": lone_face, "embedder": "sface", "vector": FIRST},
                ],
            )
        migrated(cloud_db_url)
        async with engine.connect() as connection:
            embeddings = table["face_embeddings"]
            users = [u for (u,) in await connection.execute(select(embeddings.c.user_id))]
            logged = (
                await connection.execute(
                    select(table["sync_changes"]).order_by(table["sync_changes"].c.change_id)
                )
            ).all()
            snapshot_742 = await connection.run_sync(changes.snapshot, "train:742")
            snapshot_100 = await connection.run_sync(changes.snapshot, "train:100")
    finally:
        await engine.dispose()
    assert sorted(map(str, users)) == sorted([str(anna), str(anna), str(boris)])
    assert [(e.scope, e.table_name, e.op) for e in logged] == [
        ("train:100", "ticket_tokens", "upsert"),
        ("train:742", "ticket_tokens", "upsert"),
        ("train:742", "face_embeddings", "upsert"),
        ("train:742", "face_embeddings", "upsert"),
    ], "Boris holds no ticket, and Anna's ticket on train 100 is revoked: no embedding goes there"
    for scope, snapshot in (("train:742", snapshot_742), ("train:100", snapshot_100)):
        expected = {
            (c.table, c.key, repr(c.value))
            for c in snapshot
            if c.table in ("ticket_tokens", "face_embeddings")
        }
        found = {(e.table_name, e.row_key, repr(e.value)) for e in logged if e.scope == scope}
        assert found == expected, f"the log of {scope} holds what its snapshot would"
    vectors = {base64.b64decode(e.value["vector"]) for e in logged if e.table_name == "face_embeddings"}
    assert vectors == {FIRST, SECOND}

    in_thread(lambda: command.downgrade(alembic_config(cloud_db_url), "0005"))
    engine = create_engine(cloud_db_url)
    try:
        async with engine.connect() as connection:
            left = (await connection.execute(text("SELECT table_name FROM sync_changes"))).scalars().all()
            columns = await connection.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("face_embeddings")}
            )
    finally:
        await engine.dispose()
    assert sorted(left) == ["ticket_tokens", "ticket_tokens"], "going back forgets the embeddings' entries"
    assert "user_id" not in columns


async def test_0007_logs_every_hotel_and_attraction_for_every_robot_as_a_snapshot_carries_them(
    cloud_db_url: str,
) -> None:
    """Hotels and attractions replicate from issue 16 on: those there before are logged in the `all` scope by
    the migration, exactly as the code logs them; going back removes those entries and nothing else."""
    in_thread(lambda: command.downgrade(alembic_config(cloud_db_url), "0006"))
    table = BASE_METADATA.tables
    engine = create_engine(cloud_db_url)
    place = {"description": None, "logo_url": "https://example.org/logo.png", "destination_id": "SPB"}
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(table["hotels"]).values(id=uuid.uuid4(), name="Astoria", **place))
            await connection.execute(
                insert(table["attractions"]),
                [{"id": uuid.uuid4(), "name": name, **place} for name in ("Hermitage", "Kunstkamera")],
            )
        migrated(cloud_db_url)
        async with engine.connect() as connection:
            logs = (
                await connection.execute(
                    select(CLOUD_METADATA.tables["sync_changes"]).order_by(
                        CLOUD_METADATA.tables["sync_changes"].c.change_id
                    )
                )
            ).all()
            snapshot = await connection.run_sync(changes.snapshot, "all")
        assert [(e.scope, e.table_name, e.op) for e in logs] == [
            ("all", "hotels", "upsert"),
            ("all", "attractions", "upsert"),
            ("all", "attractions", "upsert"),
        ]
        assert sorted((e.table_name, e.row_key, e.value["name"]) for e in logs) == sorted(
            (c.table, c.key, (c.value or {})["name"])
            for c in snapshot
            if c.table in ("hotels", "attractions")
        )
        assert {e.row_key: e.value for e in logs} == {
            c.key: c.value for c in snapshot if c.table in ("hotels", "attractions")
        }, "the migration logs each row exactly as a snapshot carries it"
        in_thread(lambda: command.downgrade(alembic_config(cloud_db_url), "0006"))
        async with engine.connect() as connection:
            left = (await connection.execute(text("SELECT count(*) FROM sync_changes"))).scalar_one()
            hotels = (await connection.execute(text("SELECT count(*) FROM hotels"))).scalar_one()
        assert (left, hotels) == (0, 1)
        migrated(cloud_db_url)
    finally:
        await engine.dispose()
