"""Reading a schema back in the seed's notation, from the models or from a live database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Enum, MetaData
from sqlalchemy.dialects import postgresql

from tests.seed_schema import ALEMBIC_TABLE, Diagram, ForeignKey


def seed_tables(diagram: Diagram) -> dict[str, dict[str, str]]:
    """The diagram's tables without Alembic's own."""
    return {name: cols for name, cols in diagram.tables.items() if name != ALEMBIC_TABLE}


def model_tables(metadata: MetaData) -> dict[str, dict[str, str]]:
    """Each table's columns with the type PostgreSQL would be given, written as the seed writes it."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return {
        table.name: {col.name: col.type.compile(dialect=dialect).lower() for col in table.columns}
        for table in metadata.sorted_tables
    }


def model_foreign_keys(metadata: MetaData) -> frozenset[ForeignKey]:
    return frozenset(
        ForeignKey(table.name, fk.parent.name, fk.column.table.name, fk.column.name)
        for table in metadata.sorted_tables
        for fk in table.foreign_keys
    )


def model_enums(metadata: MetaData) -> dict[str, tuple[str, ...]]:
    enums: dict[str, tuple[str, ...]] = {}
    for table in metadata.sorted_tables:
        for col in table.columns:
            if isinstance(col.type, Enum) and col.type.name:
                enums[col.type.name] = tuple(col.type.enums)
    return enums


def postgres_type(row: Any) -> str:
    """An information_schema.columns row's type in the seed's notation."""
    data_type: str = row["data_type"]
    if data_type == "character varying":
        return f"varchar({row['character_maximum_length']})"
    if data_type == "USER-DEFINED":
        return str(row["udt_name"])
    return data_type
