"""Hotels and attractions come down to every robot (issue 16): a passenger let in hears what waits at their
destination.

Two new tables: nothing earlier changes (the cloud's migration 0007 logs the rows it already had, so they
come down the log). Going back drops both.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 13:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("hotels", "attractions")


def upgrade() -> None:
    for name in _TABLES:
        op.create_table(
            name,
            sa.Column("sync_scope", sa.String(length=80), nullable=False),
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("name", sa.String(length=256), nullable=False),
            sa.Column("description", sa.String(length=1024), nullable=True),
            sa.Column("logo_url", sa.String(length=256), nullable=True),
            sa.Column("destination_id", sa.String(length=256), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{name}_destination_id"), ["destination_id"], unique=False)


def downgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{name}_destination_id"))
        op.drop_table(name)
