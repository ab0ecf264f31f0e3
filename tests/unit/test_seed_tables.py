"""The models declare every table and column of the seed's two databases, with the seed's types."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData

from models.base_server import BASE_METADATA
from models.store_server import STORE_METADATA, StoreType
from tests.schema_compare import model_enums, model_foreign_keys, model_tables, seed_tables
from tests.seed_schema import ALEMBIC_TABLE, BASE, STORE, STORE_TYPE_ENUM, Diagram

DATABASES = [pytest.param(BASE, BASE_METADATA, id="base"), pytest.param(STORE, STORE_METADATA, id="store")]


@pytest.mark.parametrize(("diagram", "metadata"), DATABASES)
def test_every_seed_table_exists_and_no_other(diagram: Diagram, metadata: MetaData) -> None:
    assert sorted(model_tables(metadata)) == sorted(seed_tables(diagram))


@pytest.mark.parametrize(("diagram", "metadata"), DATABASES)
def test_every_column_has_the_seed_type_and_length(diagram: Diagram, metadata: MetaData) -> None:
    models = model_tables(metadata)
    for table, columns in seed_tables(diagram).items():
        assert models[table] == columns, f"table {table}"


@pytest.mark.parametrize(("diagram", "metadata"), DATABASES)
def test_foreign_keys_are_the_diagram_arrows(diagram: Diagram, metadata: MetaData) -> None:
    assert model_foreign_keys(metadata) == diagram.foreign_keys


def test_store_type_enum_is_shop_or_restaurant() -> None:
    assert model_enums(STORE_METADATA) == {"store_type_enum": STORE_TYPE_ENUM}
    assert tuple(StoreType) == STORE_TYPE_ENUM


def test_alembic_table_is_left_to_alembic() -> None:
    # Both seed databases have it; Alembic creates it with exactly the seed's column when it migrates.
    for diagram in (BASE, STORE):
        assert diagram.tables[ALEMBIC_TABLE] == {"version_num": "varchar(32)"}
    assert ALEMBIC_TABLE not in model_tables(BASE_METADATA)
    assert ALEMBIC_TABLE not in model_tables(STORE_METADATA)


def test_every_id_is_a_uuid_primary_key() -> None:
    for metadata in (BASE_METADATA, STORE_METADATA):
        for table in metadata.sorted_tables:
            assert [c.name for c in table.primary_key.columns] == ["id"], table.name


def test_the_two_databases_share_no_table() -> None:
    assert not set(BASE_METADATA.tables) & set(STORE_METADATA.tables)
