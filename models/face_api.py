"""Bodies of the Face Server's routes (`/base_api/admin/user/{user_id}/face...`): what enrolment answered for
each photo, and a user's enrolled faces. No body ever carries an embedding: faces are shown by their id, the
embedders that hold a vector for them, and the quality gate's measures."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from models.faces.quality import Quality, Refusal
from models.store_api import StatusOK


class FaceQuality(BaseModel):
    """The gate's measures of a face: eye distance in pixels, yaw and roll in degrees (signed), brightness
    (mean grey 0-255) and sharpness (variance of the Laplacian) of the face's inner region."""

    eye_distance: float
    yaw_degrees: float
    roll_degrees: float
    brightness: float
    sharpness: float

    @classmethod
    def of(cls, quality: Quality) -> FaceQuality:
        return cls(
            eye_distance=quality.eye_distance,
            yaw_degrees=quality.yaw_degrees,
            roll_degrees=quality.roll_degrees,
            brightness=quality.brightness,
            sharpness=quality.sharpness,
        )


class FaceOut(BaseModel):
    """An enrolled face: one photo's, kept as one embedding per embedder (never shown)."""

    id: uuid.UUID
    user_id: uuid.UUID
    detector: str
    embedders: list[str]
    quality: FaceQuality
    created_at: dt.datetime


class ImageAccepted(BaseModel):
    """A photo the gate accepted: the face enrolled from it."""

    status: Literal["accepted"] = "accepted"
    image: int = Field(ge=0, description="the photo's place among the request's `image` parts, from 0")
    filename: str | None = Field(default=None, description="the part's file name, as sent")
    face: FaceOut


class ImageRefused(BaseModel):
    """A photo the gate refused, why, and its measures when a face was measured."""

    status: Literal["refused"] = "refused"
    image: int = Field(ge=0, description="the photo's place among the request's `image` parts, from 0")
    filename: str | None = Field(default=None, description="the part's file name, as sent")
    reason: Refusal
    detail: str
    quality: FaceQuality | None = None


ImageResult = Annotated[ImageAccepted | ImageRefused, Field(discriminator="status")]


class EnrolmentOut(BaseModel):
    """What enrolment did with each photo, in the order they were sent."""

    user_id: uuid.UUID
    accepted: int = Field(ge=0)
    refused: int = Field(ge=0)
    images: list[ImageResult]


class FacesDeleted(StatusOK):
    """`{"status": "OK", "deleted": N}`: the faces removed, with every embedding of each."""

    deleted: int = Field(ge=0)
