"""The runs of each robot's sequence numbers ingest has seen, so that the gaps between them can be reported;
filled from the events already applied.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Consecutive seqs share `seq - row_number()`: each (robot, island) is one run (both databases have window
# functions). Dead-lettered batches were not recorded before this revision; their seqs start out as gaps.
_BACKFILL = """
INSERT INTO sync_seq_ranges (robot_id, first_seq, last_seq)
SELECT robot_id, min(seq), max(seq)
FROM (
    SELECT robot_id, seq, seq - row_number() OVER (PARTITION BY robot_id ORDER BY seq) AS island
    FROM (SELECT DISTINCT robot_id, seq FROM sync_applied_events) AS seen
) AS runs
GROUP BY robot_id, island
"""


def upgrade() -> None:
    op.create_table(
        "sync_seq_ranges",
        sa.Column("robot_id", sa.Uuid(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["robot_id"], ["robots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("robot_id", "first_seq"),
    )
    op.execute(_BACKFILL)


def downgrade() -> None:
    op.drop_table("sync_seq_ranges")
