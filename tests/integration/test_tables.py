"""The models create the seed's tables on a real SQLite file and a real PostgreSQL database, and rows
written through them read back with their types intact."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import MetaData, event, inspect
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base_server import (
    BASE_METADATA,
    ActiveStore,
    Attraction,
    AuthCard,
    Engineer,
    Hotel,
    KeycloakUser,
    Robot,
    Ticket,
    TrainStore,
    User,
)
from models.store_server import STORE_METADATA, Purchase, PurchaseItem, Store, StoreItem, StoreType, Task
from tests.schema_compare import postgres_type, seed_tables
from tests.seed_schema import BASE, STORE, STORE_TYPE_ENUM, ForeignKey
from tests.support.postgres import ThrowawayDatabase

METADATA = (BASE_METADATA, STORE_METADATA)
SEED_TABLES = seed_tables(BASE) | seed_tables(STORE)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, sqlite_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database of each backend, with both seed schemas created by the models."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{sqlite_path}"
    else:
        database: ThrowawayDatabase = request.getfixturevalue("postgres_db")
        url = database.sqlalchemy_url
    engine = create_async_engine(url)
    if request.param == "sqlite":
        # SQLite checks foreign keys only when asked, per connection.
        event.listen(
            engine.sync_engine, "connect", lambda dbapi_conn, _: dbapi_conn.execute("PRAGMA foreign_keys=ON")
        )
    async with engine.begin() as conn:
        for metadata in METADATA:
            await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_all_seed_tables_and_columns_exist(engine: AsyncEngine) -> None:
    def read(sync_conn: Any) -> dict[str, set[str]]:
        inspector = inspect(sync_conn)
        return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}

    async with engine.connect() as conn:
        found = await conn.run_sync(read)
    assert found == {table: set(columns) for table, columns in SEED_TABLES.items()}


def sample_rows() -> list[SQLModel]:
    """One row for every table, in an order that satisfies the foreign keys."""
    moscow = dt.timezone(dt.timedelta(hours=3))
    user = User(name="Анна Петрова")
    engineer = Engineer(login="eng1", password="$2b$12$" + "x" * 53, privileges=3)
    store = Store(
        name="Вагон-ресторан", description="Hot meals", logo_url="/l.png", store_type=StoreType.RESTAURANT
    )
    item = StoreItem(store_id=store.id, name="Tea", description="Black", price_penny=15000, balance=None)
    purchase = Purchase(store_id=store.id, user_id=user.id)
    return [
        user,
        KeycloakUser(user_id=user.id),
        Ticket(
            user_id=user.id,
            train_number=742,
            wagon_number=5,
            place_number=17,
            date=dt.datetime(2026, 11, 27, 21, 40, tzinfo=moscow),
            station_id="2000000",
            destination_id="2004000",
            start_date=dt.datetime(2026, 11, 27, 21, 40, tzinfo=moscow),
            code="A" * 128,
        ),
        engineer,
        AuthCard(engineer_id=engineer.id, key="0" * 64),
        Robot(robot_model_id="rb-2", robot_model_name="Railbot 2"),
        Hotel(name="Hotel", destination_id="2004000"),
        Attraction(name="Hermitage", description="Museum", destination_id="2004000"),
        TrainStore(store_id=store.id, train_number=742, train_date=dt.datetime(2026, 11, 27, tzinfo=dt.UTC)),
        ActiveStore(public_key="k" * 500),
        store,
        item,
        purchase,
        PurchaseItem(purchase_id=purchase.id, store_item_id=item.id, count=2),
        Task(store_id=store.id, user_id=user.id, purchase_id=purchase.id, additional_data={"seat": "5/17"}),
    ]


async def test_rows_round_trip_with_their_types(engine: AsyncEngine) -> None:
    rows = sample_rows()
    expected = [(type(row), row.model_dump()) for row in rows]
    async with AsyncSession(engine) as session:
        for row in rows:
            # No ORM relationships are declared, so the foreign keys set the order: flush row by row.
            session.add(row)
            await session.flush()
        await session.commit()
    async with AsyncSession(engine) as session:
        for model, want in expected:
            got = (await session.exec(select(model).where(model.id == want["id"]))).one()  # type: ignore[attr-defined]
            assert got.model_dump() == want, model.__tablename__
            for name, value in got.model_dump().items():
                if isinstance(value, dt.datetime):
                    # An instant, handed back in UTC whichever backend stored it.
                    assert value.utcoffset() == dt.timedelta(0), f"{model.__tablename__}.{name}"


async def test_ticket_defaults_to_unused_and_created_at_is_set(engine: AsyncEngine) -> None:
    user = User(name="Ivan")
    async with AsyncSession(engine) as session:
        session.add(user)
        await session.commit()
        await session.refresh(user)
    assert user.created_at.tzinfo is not None
    assert abs(user.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


async def test_a_naive_timestamp_is_refused(engine: AsyncEngine) -> None:
    user = User(name="Ivan", created_at=dt.datetime(2026, 1, 1, 12, 0))  # no time zone: which instant?
    async with AsyncSession(engine) as session:
        session.add(user)
        with pytest.raises(StatementError, match="naive datetime"):
            await session.commit()


async def test_postgres_columns_have_the_seed_types(postgres_db: ThrowawayDatabase) -> None:
    engine = create_async_engine(postgres_db.sqlalchemy_url)
    async with engine.begin() as conn:
        for metadata in METADATA:
            await conn.run_sync(metadata.create_all)
    await engine.dispose()
    pg = await asyncpg.connect(postgres_db.dsn)
    try:
        columns = await pg.fetch(
            "SELECT table_name, column_name, data_type, character_maximum_length, udt_name"
            " FROM information_schema.columns WHERE table_schema = 'public'"
        )
        enum_values = await pg.fetch(
            "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
            " WHERE t.typname = 'store_type_enum' ORDER BY e.enumsortorder"
        )
        keys = await pg.fetch(
            "SELECT kcu.table_name, kcu.column_name, ccu.table_name AS target, ccu.column_name AS target_col"
            " FROM information_schema.table_constraints tc"
            " JOIN information_schema.key_column_usage kcu ON tc.constraint_name = kcu.constraint_name"
            " JOIN information_schema.constraint_column_usage ccu ON tc.constraint_name = ccu.constraint_name"
            " WHERE tc.constraint_type = 'FOREIGN KEY'"
        )
    finally:
        await pg.close()
    found: dict[str, dict[str, str]] = {}
    for row in columns:
        found.setdefault(row["table_name"], {})[row["column_name"]] = postgres_type(row)
    assert found == SEED_TABLES
    assert tuple(r["enumlabel"] for r in enum_values) == STORE_TYPE_ENUM
    assert {ForeignKey(*r) for r in keys} == BASE.foreign_keys | STORE.foreign_keys


async def test_postgres_enforces_the_seed_lengths(postgres_db: ThrowawayDatabase) -> None:
    engine = create_async_engine(postgres_db.sqlalchemy_url)
    async with engine.begin() as conn:
        await conn.run_sync(BASE_METADATA.create_all)
    try:
        # Table models do not validate on construction (sqlmodel), so only the database stands guard.
        user = User(name="x" * 61)
        async with AsyncSession(engine) as session:
            session.add(user)
            with pytest.raises(DBAPIError, match="too long"):
                await session.commit()
    finally:
        await engine.dispose()


def test_both_schemas_fit_in_one_metadata_namespace() -> None:
    combined = MetaData()
    for metadata in METADATA:
        for table in metadata.sorted_tables:
            table.to_metadata(combined)
    assert set(combined.tables) == set(SEED_TABLES)


async def test_a_dangling_foreign_key_is_refused(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        session.add(AuthCard(engineer_id=Engineer(login="x", password="y").id, key="1" * 64))
        with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
            await session.commit()
