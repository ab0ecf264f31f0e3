"""Alembic's environment for the robot's SQLite database: runs on the connection `migrate` hands it, in the
transaction `migrate` opened (so a migration that fails leaves the database as it was)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from models.columns import render_migration_type
from robot_agent.store.tables import ROBOT_METADATA

config = context.config


def _configure(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=ROBOT_METADATA,
        render_item=render_migration_type,
        render_as_batch=True,
        compare_type=True,
        transactional_ddl=True,
    )


connection = config.attributes.get("connection")
if connection is not None:
    _configure(connection)
    context.run_migrations()
else:  # `alembic revision --autogenerate` from a shell, for the developer writing the next migration
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as own:
        _configure(own)
        context.run_migrations()
    engine.dispose()
