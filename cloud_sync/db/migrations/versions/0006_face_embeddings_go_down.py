"""Face embeddings go down to robots: each knows its user (`face_embeddings.user_id`, copied from its face),
and the change log gets what was there before it replicated.

Robots that already hold cursors read only the log, so the rows that were never logged are logged here, as
the code would have: every ticket token as an upsert in its ticket's train scope (tokens replicate from issue
15 on; one already logged in that scope is left), and every face embedding as an upsert in the train scope of
each unrevoked ticket of its user, its vector as base64 text. The log's format is written out here rather
than imported (a migration must do tomorrow what it does today): `cloud_sync/db/changes.py` `row_value`.

Going back drops the column and the embeddings' log entries (the vectors, and entries a robot of that
version would refuse); the tokens' entries stay, as a version that logs tokens wrote them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:10:00
"""

from __future__ import annotations

import base64
import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from models.columns import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_LOG_LOCK = f"SELECT pg_advisory_xact_lock({0x7261696C})"  # changes.PG_LOG_LOCK: ids in commit order
_BATCH = 2_000

_faces = sa.table("faces", sa.column("id", sa.Uuid()), sa.column("user_id", sa.Uuid()))
_embeddings = sa.table(
    "face_embeddings",
    sa.column("id", sa.Uuid()),
    sa.column("face_id", sa.Uuid()),
    sa.column("user_id", sa.Uuid()),
    sa.column("embedder", sa.String()),
    sa.column("vector", sa.LargeBinary()),
)
_tickets = sa.table(
    "tickets", sa.column("id", sa.Uuid()), sa.column("user_id", sa.Uuid()), sa.column("train_number")
)
_revocations = sa.table("ticket_revocations", sa.column("ticket_id", sa.Uuid()))
_tokens = sa.table(
    "ticket_tokens",
    sa.column("ticket_id", sa.Uuid()),
    sa.column("token", sa.Text()),
    sa.column("expires_at", UtcDateTime()),
)
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
    with op.batch_alter_table("face_embeddings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Uuid(), nullable=True))
    faces_user = sa.select(_faces.c.user_id).where(_faces.c.id == _embeddings.c.face_id).scalar_subquery()
    op.execute(_embeddings.update().values(user_id=faces_user))
    with op.batch_alter_table("face_embeddings", schema=None) as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_index(batch_op.f("ix_face_embeddings_user_id"), ["user_id"], unique=False)
    _log_what_was_never_logged(op.get_bind())


def downgrade() -> None:
    op.execute(_changes.delete().where(_changes.c.table_name == "face_embeddings"))
    with op.batch_alter_table("face_embeddings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_face_embeddings_user_id"))
        batch_op.drop_column("user_id")


def _log_what_was_never_logged(conn: sa.Connection) -> None:
    # Rows are read whole before the log is written: SQLite's driver and a cursor still reading do not mix.
    now = dt.datetime.now(dt.UTC)
    logged = {
        (scope, key)
        for scope, key in conn.execute(
            sa.select(_changes.c.scope, _changes.c.row_key).where(_changes.c.table_name == "ticket_tokens")
        )
    }
    tokens = (
        sa.select(_tokens, _tickets.c.train_number)
        .join(_tickets, _tickets.c.id == _tokens.c.ticket_id)
        .order_by(_tickets.c.train_number, _tokens.c.ticket_id)
    )
    entries = (
        _entry(
            f"train:{r.train_number}",
            "ticket_tokens",
            str(r.ticket_id),
            {"ticket_id": str(r.ticket_id), "token": r.token, "expires_at": r.expires_at.isoformat()},
            now,
        )
        for r in conn.execute(tokens).all()
        if (f"train:{r.train_number}", str(r.ticket_id)) not in logged
    )
    _write(conn, entries)

    unrevoked = sa.select(_tickets.c.user_id, _tickets.c.train_number).where(
        _tickets.c.id.not_in(sa.select(_revocations.c.ticket_id))
    )
    trains: dict[Any, set[int]] = defaultdict(set)
    for user, train in conn.execute(unrevoked.distinct()):
        trains[user].add(train)
    embeddings = conn.execute(
        sa.select(_embeddings.c.id, _embeddings.c.user_id, _embeddings.c.embedder, _embeddings.c.vector)
        .where(_embeddings.c.user_id.in_(unrevoked.with_only_columns(_tickets.c.user_id)))
        .order_by(_embeddings.c.user_id, _embeddings.c.id)
    ).all()
    _write(
        conn,
        (
            _entry(
                f"train:{train}",
                "face_embeddings",
                str(r.id),
                {
                    "id": str(r.id),
                    "user_id": str(r.user_id),
                    "embedder": r.embedder,
                    "vector": base64.b64encode(r.vector).decode("ascii"),
                },
                now,
            )
            for r in embeddings
            for train in sorted(trains[r.user_id])
        ),
    )


def _entry(scope: str, table: str, key: str, value: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    return {
        "scope": scope,
        "table_name": table,
        "row_key": key,
        "op": "upsert",
        "value": value,
        "changed_at": now,
    }


def _write(conn: sa.Connection, entries: Iterator[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    locked = conn.dialect.name != "postgresql"
    for entry in entries:
        batch.append(entry)
        if len(batch) == _BATCH:
            locked = _insert(conn, batch, locked)
    if batch:
        _insert(conn, batch, locked)


def _insert(conn: sa.Connection, batch: list[dict[str, Any]], locked: bool) -> bool:
    if not locked:
        conn.execute(sa.text(_PG_LOG_LOCK))
    conn.execute(_changes.insert(), batch)
    batch.clear()
    return True
