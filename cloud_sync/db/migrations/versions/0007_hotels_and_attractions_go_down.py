"""Hotels and attractions go down to every robot (issue 16): the change log gets the rows there were.

Robots that already hold cursors read only the log, so every hotel and attraction is logged here as an upsert
in the `all` scope, as the code would have. The log's format is written out here rather than imported (a
migration must do tomorrow what it does today): `cloud_sync/db/changes.py` `row_value`.

Going back removes those tables' log entries (a robot of that version would refuse them).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:40:00
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.columns import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_LOG_LOCK = f"SELECT pg_advisory_xact_lock({0x7261696C})"  # changes.PG_LOG_LOCK: ids in commit order
_TABLES = ("hotels", "attractions")
_COLUMNS = ("id", "name", "description", "logo_url", "destination_id")
_changes = sa.table(
    "sync_changes",
    sa.column("scope", sa.String()),
    sa.column("table_name", sa.String()),
    sa.column("row_key", sa.String()),
    sa.column("op", sa.String()),
    sa.column("value", sa.JSON()),
    sa.column("changed_at", UtcDateTime()),
)


def upgrade() -> None:
    conn = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    entries = []
    for name in _TABLES:
        # Typed: SQLite keeps a Uuid as 32 hex digits, which only the type turns back into a UUID.
        places = sa.table(name, sa.column("id", sa.Uuid()), *(sa.column(c) for c in _COLUMNS[1:]))
        for row in conn.execute(sa.select(places).order_by(places.c.id)).all():
            value = {c: (str(row.id) if c == "id" else getattr(row, c)) for c in _COLUMNS}
            entries.append(
                {
                    "scope": "all",
                    "table_name": name,
                    "row_key": str(row.id),
                    "op": "upsert",
                    "value": value,
                    "changed_at": now,
                }
            )
    if entries:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(_PG_LOG_LOCK))
        conn.execute(_changes.insert(), entries)


def downgrade() -> None:
    op.execute(_changes.delete().where(_changes.c.table_name.in_(_TABLES)))
