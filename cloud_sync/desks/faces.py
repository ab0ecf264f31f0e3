"""A user's enrolled faces in the database: storing what enrolment accepted, listing, forgetting.

Faces are deleted through the ORM, row by row (embeddings first), not by the database's cascades alone, so
that the session sees every row that goes (decision 20: what robots copy is logged by the session).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.tables import Face, FaceEmbedding
from cloud_sync.errors import NotFound
from models.base_server import User
from models.face_api import FaceOut, FaceQuality
from models.store_api import PageQuery

if TYPE_CHECKING:  # the pipeline (OpenCV, ONNX Runtime) is imported where photos are enrolled, not here
    from cloud_sync.desks.face_enrolment import Enrolled


async def require_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    if await session.get(User, user_id) is None:
        raise NotFound(f"user {user_id} not found")


async def add_faces(session: AsyncSession, user_id: uuid.UUID, enrolled: Sequence[Enrolled]) -> list[Face]:
    """A face and its embeddings for each accepted photo, added to the session (the caller commits)."""
    faces = []
    embeddings = []
    for photo in enrolled:
        quality = photo.quality
        face = Face(
            user_id=user_id,
            detector=photo.detector,
            eye_distance=quality.eye_distance,
            yaw_degrees=quality.yaw_degrees,
            roll_degrees=quality.roll_degrees,
            brightness=quality.brightness,
            sharpness=quality.sharpness,
        )
        faces.append(face)
        embeddings += [
            FaceEmbedding(
                face_id=face.id, user_id=user_id, embedder=embedder, vector=vector, created_at=face.created_at
            )
            for embedder, vector in sorted(photo.vectors.items())
        ]
    # Faces first: nothing tells the session that embeddings refer to them (no relationship is mapped).
    session.add_all(faces)
    await session.flush()
    session.add_all(embeddings)
    return faces


def face_out(face: Face, embedders: Sequence[str]) -> FaceOut:
    return FaceOut(
        id=face.id,
        user_id=face.user_id,
        detector=face.detector,
        embedders=sorted(embedders),
        quality=FaceQuality(
            eye_distance=face.eye_distance,
            yaw_degrees=face.yaw_degrees,
            roll_degrees=face.roll_degrees,
            brightness=face.brightness,
            sharpness=face.sharpness,
        ),
        created_at=face.created_at,
    )


async def page_of_faces(
    session: AsyncSession, user_id: uuid.UUID, query: PageQuery
) -> tuple[list[FaceOut], int]:
    """One page of a user's faces, oldest first, and how many there are; NotFound for an unknown user."""
    await require_user(session, user_id)
    total = (await session.exec(select(func.count()).where(col(Face.user_id) == user_id))).one()
    faces = list(
        (
            await session.exec(
                select(Face)
                .where(col(Face.user_id) == user_id)
                .order_by(col(Face.created_at), col(Face.id))
                .offset(query.offset)
                .limit(query.size)
            )
        ).all()
    )
    embedders = await _embedders(session, [face.id for face in faces])
    return [face_out(face, embedders[face.id]) for face in faces], int(total)


async def _embedders(session: AsyncSession, face_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """Which embedders hold a vector for each face (the vectors themselves are not read)."""
    found: dict[uuid.UUID, list[str]] = defaultdict(list)
    if face_ids:
        pairs = select(FaceEmbedding.face_id, FaceEmbedding.embedder)
        rows = await session.exec(pairs.where(col(FaceEmbedding.face_id).in_(face_ids)))
        for face_id, embedder in rows:
            found[face_id].append(embedder)
    return found


async def forget_face(session: AsyncSession, user_id: uuid.UUID, face_id: uuid.UUID) -> None:
    """Delete one of a user's faces with its embeddings (the caller commits). A face of another user is
    NotFound, worded as for a face that does not exist."""
    await require_user(session, user_id)
    face = await session.get(Face, face_id)
    if face is None or face.user_id != user_id:
        raise NotFound(f"face {face_id} of user {user_id} not found")
    await _delete(session, [face])


async def forget_faces(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Delete every face of a user with its embeddings (the caller commits); how many faces went."""
    faces = list((await session.exec(select(Face).where(col(Face.user_id) == user_id))).all())
    await _delete(session, faces)
    return len(faces)


async def _delete(session: AsyncSession, faces: Sequence[Face]) -> None:
    ids = [face.id for face in faces]
    if not ids:
        return
    # The vectors are not read: deleting their rows needs only the keys.
    vectors = defer(FaceEmbedding.vector)  # type: ignore[arg-type]  # sqlmodel types columns as values
    embeddings = await session.exec(
        select(FaceEmbedding).where(col(FaceEmbedding.face_id).in_(ids)).options(vectors)
    )
    for embedding in embeddings:
        await session.delete(embedding)
    await session.flush()  # embeddings before their faces, faces before a user deleted in the same session
    for face in faces:
        await session.delete(face)
    await session.flush()
