"""Ticket checks name their method (camera, manual, ...); the used-ticket ledger (issue 5).

A check recorded before this revision was made at the camera, the only method there was: the new column's
default says so for those rows, and ADD COLUMN keeps the table where it is (no copy of a long history).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 23:16:07.707385
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "used_tickets",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.add_column(
        "ticket_checks",
        sa.Column("method", sa.String(length=20), nullable=False, server_default="camera"),
    )


def downgrade() -> None:
    with op.batch_alter_table("ticket_checks", schema=None) as batch_op:
        batch_op.drop_column("method")

    op.drop_table("used_tickets")
