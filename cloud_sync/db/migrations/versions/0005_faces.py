"""The Face Server's tables: faces enrolled from photos (whose, the detector, the quality measures) and their
embeddings, one per embedder (float32 little-endian bytes).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:45:18
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "faces",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("detector", sa.String(length=40), nullable=False),
        sa.Column("eye_distance", sa.Double(), nullable=False),
        sa.Column("yaw_degrees", sa.Double(), nullable=False),
        sa.Column("roll_degrees", sa.Double(), nullable=False),
        sa.Column("brightness", sa.Double(), nullable=False),
        sa.Column("sharpness", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_faces_user_id"), ["user_id"], unique=False)

    op.create_table(
        "face_embeddings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("face_id", sa.Uuid(), nullable=False),
        sa.Column("embedder", sa.String(length=40), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("face_id", "embedder"),
    )


def downgrade() -> None:
    op.drop_table("face_embeddings")
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_faces_user_id"))
    op.drop_table("faces")
