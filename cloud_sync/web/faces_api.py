"""The Face Server's routes under /base_api/admin/user/{user_id}: enrol faces from photos, list them (never
their vectors), delete one or all. Admin tokens only: a store's or a robot's token is a 403.

Listing and deleting work without the models (a passenger's right to be forgotten does not wait for
`robot-agent models fetch`); enrolment answers 503 naming the command until they load.
"""

from __future__ import annotations

import logging
import time

from pydantic import BaseModel

from cloud_sync.db.tables import Role
from cloud_sync.desks.face_enrolment import Enrolled
from cloud_sync.desks.faces import add_faces, face_out, forget_face, forget_faces, page_of_faces, require_user
from cloud_sync.web.context import context
from cloud_sync.web.resources import commit_or_409
from cloud_sync.web.routing import Api, Call, HTTPError, NoInput, Upload
from models.face_api import (
    EnrolmentOut,
    FaceOut,
    FaceQuality,
    FacesDeleted,
    ImageAccepted,
    ImageRefused,
    ImageResult,
)
from models.store_api import Page, PageQuery, StatusOK

log = logging.getLogger(__name__)

USER = "/base_api/admin/user/{user_id}"
TAG = "Base API: faces"
ADMIN = (Role.ADMIN,)

# A few photos make a good enrolment; a phone's photo is 2-8 MB.
MAX_PHOTOS = 10
MAX_PHOTO_BYTES = 10 * 1024 * 1024
PHOTOS = Upload(
    field="image",
    max_files=MAX_PHOTOS,
    max_bytes=MAX_PHOTO_BYTES,
    description="Photos of the user, one face each: JPEG, PNG or WebP, at most 50 megapixels.",
)


def register(api: Api) -> None:
    @api.route(
        "POST",
        f"{USER}/face",
        summary="Enrol a user's face from photos",
        tag=TAG,
        response=EnrolmentOut,
        roles=ADMIN,
        upload=PHOTOS,
        errors=(409,),
    )
    async def enrol(call: Call[None, NoInput]) -> BaseModel:
        """Each photo through the quality gate: accepted ones stored, refused ones answered with why."""
        ctx, user_id = context(call.app), call.path["user_id"]
        workers = ctx.faces
        if workers.unavailable is not None:
            raise HTTPError(503, workers.unavailable)
        async with workers.admitted():
            async with ctx.sessions() as session:
                await require_user(session, user_id)  # before the photos are read
            files = await call.files()
            began = time.perf_counter()
            verdicts = await workers.enrol([file.data for file in files])
            accepted = [verdict for verdict in verdicts if isinstance(verdict, Enrolled)]
            async with ctx.sessions() as session:
                faces = iter(await add_faces(session, user_id, accepted))
                await commit_or_409(session, f"faces of user {user_id}")
        results: list[ImageResult] = []
        for index, (file, verdict) in enumerate(zip(files, verdicts, strict=True)):
            if isinstance(verdict, Enrolled):
                face = face_out(next(faces), list(verdict.vectors))
                results.append(ImageAccepted(image=index, filename=file.filename, face=face))
            else:
                quality = FaceQuality.of(verdict.quality) if verdict.quality is not None else None
                results.append(
                    ImageRefused(
                        image=index,
                        filename=file.filename,
                        reason=verdict.reason,
                        detail=verdict.detail,
                        quality=quality,
                    )
                )
        log.info(
            "faces enrolled user=%s accepted=%d refused=%d ms=%d",
            user_id,
            len(accepted),
            len(files) - len(accepted),
            round((time.perf_counter() - began) * 1000),
        )
        return EnrolmentOut(
            user_id=user_id, accepted=len(accepted), refused=len(files) - len(accepted), images=results
        )

    @api.route(
        "GET",
        f"{USER}/faces",
        summary="List a user's enrolled faces",
        tag=TAG,
        response=Page[FaceOut],
        query=PageQuery,
        roles=ADMIN,
    )
    async def listing(call: Call[None, PageQuery]) -> BaseModel:
        async with context(call.app).sessions() as session:
            faces, total = await page_of_faces(session, call.path["user_id"], call.query)
        return Page[FaceOut].of(faces, total, call.query)

    @api.route(
        "DELETE",
        f"{USER}/face/{{face_id}}",
        summary="Delete one of a user's faces",
        tag=TAG,
        response=StatusOK,
        roles=ADMIN,
    )
    async def delete_one(call: Call[None, NoInput]) -> BaseModel:
        user_id, face_id = call.path["user_id"], call.path["face_id"]
        async with context(call.app).sessions() as session:
            await forget_face(session, user_id, face_id)
            await commit_or_409(session, f"face {face_id}")
        log.info("face deleted user=%s face=%s", user_id, face_id)
        return StatusOK()

    @api.route(
        "DELETE",
        f"{USER}/faces",
        summary="Delete all of a user's faces",
        tag=TAG,
        response=FacesDeleted,
        roles=ADMIN,
    )
    async def delete_all(call: Call[None, NoInput]) -> BaseModel:
        user_id = call.path["user_id"]
        async with context(call.app).sessions() as session:
            await require_user(session, user_id)
            deleted = await forget_faces(session, user_id)
            await commit_or_409(session, f"faces of user {user_id}")
        log.info("faces deleted user=%s faces=%d", user_id, deleted)
        return FacesDeleted(deleted=deleted)
