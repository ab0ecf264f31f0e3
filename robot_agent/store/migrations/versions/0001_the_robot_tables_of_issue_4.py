"""The robot's tables as issue 4 left them: the outbox, rejected events, what the robot did, the replicas.

A database made before the robot had migrations holds exactly these tables: `migrate` stamps it with this
revision (or 0002, if it has the ledger already) and upgrades it from there.

Revision ID: 0001
Revises:
Create Date: 2026-11-30 23:16:05.195145
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_cards",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("engineer_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("auth_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_cards_engineer_id"), ["engineer_id"], unique=False)

    op.create_table(
        "engineer_actions",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("engineer_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("engineer_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_engineer_actions_engineer_id"), ["engineer_id"], unique=False)

    op.create_table(
        "engineers",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("login", sa.String(length=60), nullable=False),
        sa.Column("password", sa.String(length=60), nullable=False),
        sa.Column("privileges", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("wall_ms", sa.Integer(), nullable=False),
        sa.Column("mono_ms", sa.Integer(), nullable=False),
        sa.Column("boot", sa.Uuid(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("batch", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_batch"), ["batch"], unique=False)

    op.create_table(
        "purchases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("is_default_ready", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purchases_store_id"), ["store_id"], unique=False)

    op.create_table(
        "rejected_events",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("wall_ms", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("batch", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
    )
    op.create_table(
        "robot_assignments",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("robot_id", sa.Uuid(), nullable=False),
        sa.Column("train_number", sa.Integer(), nullable=False),
        sa.Column("train_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "store_items",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("logo_url", sa.String(length=255), nullable=True),
        sa.Column("balance", sa.Integer(), nullable=True),
        sa.Column("price_penny", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("store_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_store_items_store_id"), ["store_id"], unique=False)

    op.create_table(
        "stores",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("logo_url", sa.String(length=255), nullable=False),
        sa.Column("store_type", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sync_cursors",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )
    op.create_table(
        "task_deliveries",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("is_ready", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("task_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_deliveries_task_id"), ["task_id"], unique=False)

    op.create_table(
        "ticket_checks",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("verdict", sa.String(length=40), nullable=False),
        sa.Column("train_number", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("ticket_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_checks_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "ticket_revocations",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.create_table(
        "tickets",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("train_number", sa.Integer(), nullable=False),
        sa.Column("wagon_number", sa.Integer(), nullable=False),
        sa.Column("place_number", sa.Integer(), nullable=False),
        sa.Column("date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station_id", sa.String(length=60), nullable=False),
        sa.Column("destination_id", sa.String(length=60), nullable=False),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tickets_train_number"), ["train_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_tickets_user_id"), ["user_id"], unique=False)

    op.create_table(
        "train_stores",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("train_number", sa.Integer(), nullable=False),
        sa.Column("train_date", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "users",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "purchase_items",
        sa.Column("purchase_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
        ),
        sa.PrimaryKeyConstraint("purchase_id", "item_id"),
    )


def downgrade() -> None:
    op.drop_table("purchase_items")
    op.drop_table("users")
    op.drop_table("train_stores")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_user_id"))
        batch_op.drop_index(batch_op.f("ix_tickets_train_number"))

    op.drop_table("tickets")
    op.drop_table("ticket_revocations")
    with op.batch_alter_table("ticket_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_checks_ticket_id"))

    op.drop_table("ticket_checks")
    with op.batch_alter_table("task_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_deliveries_task_id"))

    op.drop_table("task_deliveries")
    op.drop_table("sync_cursors")
    op.drop_table("stores")
    with op.batch_alter_table("store_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_store_items_store_id"))

    op.drop_table("store_items")
    op.drop_table("signing_keys")
    op.drop_table("robot_assignments")
    op.drop_table("rejected_events")
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchases_store_id"))

    op.drop_table("purchases")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_batch"))

    op.drop_table("outbox")
    op.drop_table("engineers")
    with op.batch_alter_table("engineer_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_engineer_actions_engineer_id"))

    op.drop_table("engineer_actions")
    with op.batch_alter_table("auth_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_cards_engineer_id"))

    op.drop_table("auth_cards")
