"""The seed's Base and Store tables, and the cloud's own (tokens, signing keys, revocations, assignments).

Revision ID: 0001
Revises:
Create Date: 2026-11-27 02:06:52.136724
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
        "active_stores",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("public_key", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "attractions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("logo_url", sa.String(length=256), nullable=True),
        sa.Column("destination_id", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "engineers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("login", sa.String(length=60), nullable=False),
        sa.Column("password", sa.String(length=60), nullable=False),
        sa.Column("privileges", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login"),
    )
    op.create_table(
        "hotels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("logo_url", sa.String(length=256), nullable=True),
        sa.Column("destination_id", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "robots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("robot_model_id", sa.String(length=60), nullable=False),
        sa.Column("robot_model_name", sa.String(length=60), nullable=False),
        sa.Column("public_key", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "train_stores",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("train_number", sa.Integer(), nullable=False),
        sa.Column("train_date", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("train_stores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_train_stores_store_id"), ["store_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_train_stores_train_number"), ["train_number"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "auth_cards",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("engineer_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["engineer_id"],
            ["engineers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("auth_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_cards_engineer_id"), ["engineer_id"], unique=False)

    op.create_table(
        "keycloak_users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("keycloak_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_keycloak_users_user_id"), ["user_id"], unique=False)

    op.create_table(
        "tickets",
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
        sa.Column("used", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tickets_train_number"), ["train_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_tickets_user_id"), ["user_id"], unique=False)

    op.create_table(
        "stores",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("logo_url", sa.String(length=255), nullable=False),
        sa.Column("store_type", sa.Enum("SHOP", "RESTAURANT", name="store_type_enum"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "purchases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purchases_store_id"), ["store_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_purchases_user_id"), ["user_id"], unique=False)

    op.create_table(
        "store_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("logo_url", sa.String(length=255), nullable=True),
        sa.Column("balance", sa.Integer(), nullable=True),
        sa.Column("price_penny", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("store_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_store_items_store_id"), ["store_id"], unique=False)

    op.create_table(
        "purchase_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("purchase_id", sa.Uuid(), nullable=False),
        sa.Column("store_item_id", sa.Uuid(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_item_id"],
            ["store_items.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("purchase_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purchase_items_purchase_id"), ["purchase_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_purchase_items_store_item_id"), ["store_item_id"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purchase_id", sa.Uuid(), nullable=False),
        sa.Column("is_ready", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("additional_data", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_purchase_id"), ["purchase_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_store_id"), ["store_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_user_id"), ["user_id"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.Enum("admin", "store", "robot", name="api_role_enum"), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=True),
        sa.Column("robot_id", sa.Uuid(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["robot_id"], ["robots.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_robot_id"), ["robot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_tokens_store_id"), ["store_id"], unique=False)

    op.create_table(
        "robot_assignments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("robot_id", sa.Uuid(), nullable=False),
        sa.Column("train_number", sa.Integer(), nullable=False),
        sa.Column("train_date", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["robot_id"], ["robots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("robot_id", "train_date"),
    )
    with op.batch_alter_table("robot_assignments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_robot_assignments_robot_id"), ["robot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_robot_assignments_train_number"), ["train_number"], unique=False)

    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "ticket_revocations",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.create_table(
        "ticket_tokens",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("kid", sa.String(length=16), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["kid"],
            ["signing_keys.kid"],
        ),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    with op.batch_alter_table("ticket_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_tokens_kid"), ["kid"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ticket_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_tokens_kid"))

    op.drop_table("ticket_tokens")
    op.drop_table("ticket_revocations")
    op.drop_table("signing_keys")
    with op.batch_alter_table("robot_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_robot_assignments_train_number"))
        batch_op.drop_index(batch_op.f("ix_robot_assignments_robot_id"))

    op.drop_table("robot_assignments")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_store_id"))
        batch_op.drop_index(batch_op.f("ix_api_tokens_robot_id"))

    op.drop_table("api_tokens")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_user_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_store_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_purchase_id"))

    op.drop_table("tasks")
    with op.batch_alter_table("purchase_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchase_items_store_item_id"))
        batch_op.drop_index(batch_op.f("ix_purchase_items_purchase_id"))

    op.drop_table("purchase_items")
    with op.batch_alter_table("store_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_store_items_store_id"))

    op.drop_table("store_items")
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchases_user_id"))
        batch_op.drop_index(batch_op.f("ix_purchases_store_id"))

    op.drop_table("purchases")
    op.drop_table("stores")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_user_id"))
        batch_op.drop_index(batch_op.f("ix_tickets_train_number"))

    op.drop_table("tickets")
    with op.batch_alter_table("keycloak_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_keycloak_users_user_id"))

    op.drop_table("keycloak_users")
    with op.batch_alter_table("auth_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_cards_engineer_id"))

    op.drop_table("auth_cards")
    op.drop_table("users")
    with op.batch_alter_table("train_stores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_train_stores_train_number"))
        batch_op.drop_index(batch_op.f("ix_train_stores_store_id"))

    op.drop_table("train_stores")
    op.drop_table("robots")
    op.drop_table("hotels")
    op.drop_table("engineers")
    op.drop_table("attractions")
    op.drop_table("active_stores")
    # PostgreSQL keeps enum types after their tables are gone.
    sa.Enum(name="store_type_enum").drop(op.get_bind(), checkfirst=True)
    sa.Enum(name="api_role_enum").drop(op.get_bind(), checkfirst=True)
