"""Faces from the cloud: down-sync's face embeddings sealed into the robot's `faces` table on arrival, and
the faces of passengers whose tickets have ended taken away (docs/sync.md, "Faces").

Down-sync (robot_agent/sync/downsync.py) applies messages in robot_agent/store/replica.py, which holds no
key: it hands new embeddings to a `SealingSink` built here from `[vision] face_key_file`. A robot without a
face key gets no sink, and down-sync drops the embeddings with one warning.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Connection, and_, delete, exists, or_

from models.faces.vectors import vector_from_bytes
from robot_agent.faces.key import load_face_key
from robot_agent.faces.records import FACES, add_face
from robot_agent.faces.sealing import FaceKey
from robot_agent.store.replica import CloudFace, table

log = logging.getLogger(__name__)

SOURCE = "cloud"


class SealingSink:
    """Seals each face embedding down-sync brings into a `faces` row (source "cloud", the embedding's id as
    the row's, the scope it came in); a replica.FaceSink."""

    def __init__(self, key: FaceKey) -> None:
        self._key = key

    def add(self, conn: Connection, scope: str, faces: Sequence[CloudFace]) -> None:
        at = dt.datetime.now(dt.UTC)
        for face in faces:
            vector = vector_from_bytes(face.vector)
            add_face(
                conn,
                self._key,
                face.user_id,
                face.embedder,
                vector,
                source=SOURCE,
                at=at,
                face_id=face.id,
                sync_scope=scope,
            )


def open_face_sink(key_file: Path) -> SealingSink | None:
    """The sink for down-sync's faces, sealing with the face key in `key_file`; None if there is no such file
    (down-sync then drops faces, saying so once). A file that is there but not a private face key is a
    FaceKeyError: a robot set up wrong says so rather than dropping faces quietly."""
    if not key_file.exists():
        return None
    return SealingSink(load_face_key(key_file))


def prune_ended(conn: Connection, now: dt.datetime) -> int:
    """Delete the cloud faces of passengers who hold no ticket in the robot's copy that still counts: one
    that is not revoked and whose token has not expired (a ticket whose token has not come yet counts); how
    many went. A local face (`faces enroll`) is never touched. Call `records.forget_deleted` after the
    commit when any went."""
    tickets, tokens, revocations = table("tickets"), table("ticket_tokens"), table("ticket_revocations")
    # Per face, through the tickets' user_id index: the cost follows the faces, not the 100,000 tickets.
    holds_one = (
        exists()
        .select_from(tickets.outerjoin(tokens, tokens.c.ticket_id == tickets.c.id))
        .where(
            tickets.c.user_id == FACES.c.user_id,
            or_(tokens.c.ticket_id.is_(None), tokens.c.expires_at > now),
            ~exists().where(revocations.c.ticket_id == tickets.c.id),
        )
    )
    conn.exec_driver_sql("PRAGMA secure_delete=ON")
    ended = and_(FACES.c.sync_scope.is_not(None), ~holds_one)
    gone = int(conn.execute(delete(FACES).where(ended)).rowcount)
    if gone:
        log.info("faces of passengers with no ticket left removed count=%d", gone)
    return gone
