"""Tickets' signed tokens come down with the tickets, and a face knows the scope it came in (issue 15).

A passenger recognised by face is checked with their ticket's token, by the verifier a shown code goes
through; a face that came from the cloud is withdrawn with its scope. A new table and a nullable column:
nothing earlier changes (the cloud's migration 0006 logs the tokens it already had, so they come down
the log). Going back drops both.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_tokens",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_scope", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.drop_column("sync_scope")
    op.drop_table("ticket_tokens")
