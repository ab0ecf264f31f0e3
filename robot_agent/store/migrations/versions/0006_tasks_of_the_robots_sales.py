"""The tasks of the robot's own sales come down in its scope (issue 16, selling): the robot learns when an
order is ready to hand over, and the stock conflicts its sale met.

One new table, `tasks` (tasks made before this version name no robot, so no cloud migration logs any), and
`purchases.compartment`, nullable: the compartment an order waits in (earlier sales were kept nowhere). Going
back drops both.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("sync_scope", sa.String(length=80), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purchase_id", sa.Uuid(), nullable=False),
        sa.Column("is_ready", sa.Boolean(), nullable=False),
        sa.Column("additional_data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_purchase_id"), ["purchase_id"], unique=False)
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("compartment", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purchases", schema=None) as batch_op:
        batch_op.drop_column("compartment")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_purchase_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_user_id"))
    op.drop_table("tasks")
