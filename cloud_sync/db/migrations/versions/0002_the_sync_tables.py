"""The sync tables: applied events, dead letters, conflicts, the change log, broker credentials, robot state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 12:57:12.360333
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
        "robot_credentials",
        sa.Column("robot_id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["robot_id"], ["robots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("robot_id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "sync_applied_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("robot_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("robot_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["robot_id"], ["robots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("sync_applied_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_applied_events_robot_id"), ["robot_id"], unique=False)

    op.create_table(
        "sync_changes",
        sa.Column(
            "change_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_key", sa.String(length=64), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("change_id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("sync_changes", schema=None) as batch_op:
        batch_op.create_index("ix_sync_changes_scope_change_id", ["scope", "change_id"], unique=False)

    op.create_table(
        "sync_conflicts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("robot_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["robot_id"], ["robots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_conflicts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_conflicts_robot_id"), ["robot_id"], unique=False)

    op.create_table(
        "sync_dead_letters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("robot_id", sa.Uuid(), nullable=True),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_dead_letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_dead_letters_robot_id"), ["robot_id"], unique=False)

    op.create_table(
        "sync_robot_state",
        sa.Column("robot_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_batch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clock_skew_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["robot_id"], ["robots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("robot_id"),
    )


def downgrade() -> None:
    op.drop_table("sync_robot_state")
    with op.batch_alter_table("sync_dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_dead_letters_robot_id"))

    op.drop_table("sync_dead_letters")
    with op.batch_alter_table("sync_conflicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_conflicts_robot_id"))

    op.drop_table("sync_conflicts")
    with op.batch_alter_table("sync_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_changes_scope_change_id")

    op.drop_table("sync_changes")
    with op.batch_alter_table("sync_applied_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_applied_events_robot_id"))

    op.drop_table("sync_applied_events")
    op.drop_table("robot_credentials")
