"""The `faces` table: enrolled faces as rows whose embedding is sealed (`sealing.py`).

Functions take a connection, so a caller (`robot-agent faces enroll`, down-sync) writes faces in its own
transaction. A face is never updated: a new embedding is a new row. Deleting leaves no copy behind: the
database overwrites deleted rows with zeros (`secure_delete`, robot_agent/store/database.py), and
`forget_deleted` empties the write-ahead log, which still holds the pages as they were written.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Engine, delete, insert, select

from robot_agent.faces.sealing import FaceKey, SealError, open_embedding, seal_embedding
from robot_agent.store.tables import EnrolledFace

log = logging.getLogger(__name__)

FACES = EnrolledFace.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class FaceRow:
    """What is known of an enrolled face without opening its embedding."""

    id: uuid.UUID
    user_id: uuid.UUID
    embedder: str
    created_at: dt.datetime
    source: str


@dataclass(frozen=True, slots=True, eq=False)
class OpenedFace:
    """An enrolled face with its embedding, opened: keep it in memory only."""

    row: FaceRow
    vector: NDArray[np.float32]


def add_face(
    conn: Connection,
    key: FaceKey,
    user_id: uuid.UUID,
    embedder: str,
    vector: NDArray[np.floating],
    *,
    source: str,
    at: dt.datetime,
    face_id: uuid.UUID | None = None,
    sync_scope: str | None = None,
) -> FaceRow:
    """Store one face, its embedding sealed to the row; a new id unless `face_id` is given. `sync_scope`:
    the down-sync scope a face from the cloud came in (None for a local face)."""
    row = FaceRow(face_id or uuid.uuid4(), user_id, embedder, at, source)
    conn.execute(
        insert(FACES).values(
            id=row.id,
            user_id=row.user_id,
            embedder=row.embedder,
            embedding=seal_embedding(key, row.id, row.user_id, row.embedder, vector),
            created_at=row.created_at,
            source=row.source,
            sync_scope=sync_scope,
        )
    )
    return row


def list_faces(conn: Connection, user_id: uuid.UUID | None = None) -> list[FaceRow]:
    """Every enrolled face (or a user's), oldest first; never an embedding."""
    query = select(FACES.c.id, FACES.c.user_id, FACES.c.embedder, FACES.c.created_at, FACES.c.source)
    if user_id is not None:
        query = query.where(FACES.c.user_id == user_id)
    rows = conn.execute(query.order_by(FACES.c.created_at, FACES.c.id))
    return [FaceRow(*row) for row in rows]


def face_ids(conn: Connection, embedder: str) -> frozenset[uuid.UUID]:
    """The ids of the faces one embedder made."""
    return frozenset(conn.execute(select(FACES.c.id).where(FACES.c.embedder == embedder)).scalars())


def open_faces(
    conn: Connection, key: FaceKey, embedder: str, ids: Iterable[uuid.UUID] | None = None
) -> Iterator[OpenedFace]:
    """The faces one embedder made (those of `ids` only, if given), their embeddings opened with `key`;
    SealError from the first that does not open."""
    query = select(FACES).where(FACES.c.embedder == embedder)
    if ids is not None:
        query = query.where(FACES.c.id.in_(list(ids)))
    for found in conn.execute(query.order_by(FACES.c.created_at, FACES.c.id)):
        row = FaceRow(found.id, found.user_id, found.embedder, found.created_at, found.source)
        try:
            vector = open_embedding(key, row.id, row.user_id, row.embedder, found.embedding)
        except SealError as err:
            raise SealError(f"face {row.id} of user {row.user_id}: {err}") from err
        yield OpenedFace(row, vector)


def delete_faces(
    conn: Connection, *, user_id: uuid.UUID | None = None, ids: Iterable[uuid.UUID] = ()
) -> list[FaceRow]:
    """Delete a user's faces (every embedder's) and/or the faces `ids`; the rows deleted. Call
    `forget_deleted` once the transaction is committed."""
    wanted = list(ids)
    condition = FACES.c.id.in_(wanted)
    if user_id is not None:
        condition = condition | (FACES.c.user_id == user_id)
    conn.exec_driver_sql("PRAGMA secure_delete=ON")  # the store sets it; a caller's own engine may not
    deleted = conn.execute(
        delete(FACES)
        .where(condition)
        .returning(FACES.c.id, FACES.c.user_id, FACES.c.embedder, FACES.c.created_at, FACES.c.source)
    )
    return [FaceRow(*row) for row in deleted]


def forget_deleted(engine: Engine) -> bool:
    """Empty the database's write-ahead log (a TRUNCATE checkpoint) so the pages of deleted faces, as they
    were once written, leave it too; False, with a warning, if a reader held it back (the next
    checkpoint takes them then)."""
    with engine.connect() as conn:
        busy, _log_pages, _moved = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    if busy:
        log.warning(
            "the robot database's write-ahead log is in use, so it still holds deleted faces' sealed rows "
            "until its next checkpoint"
        )
    return not busy
