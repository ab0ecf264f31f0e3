"""The quality gate: whether a photo may be enrolled, and why not. Usable by the robot on a frame's face too.

Measures come from the detector's landmarks (size, pose) and from the face's chip on the ArcFace template
(brightness, sharpness), so they mean the same whichever embedder follows. Each limit is a named constant;
the comment beside it says how it was set: on the four portraits of `face_recognition`'s test images
(Obama x3, Biden) and their augmentations, through YuNet + SFace, keeping the embedding within a cosine
distance of 0.10 of the clean photo's (SFace's own threshold is 0.637; these people's genuine pairs are
0.19-0.29 apart). Four people: these are starting points, for the evaluation to revisit.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from models.faces.align import ARCFACE_112, align
from models.faces.detect import DetectedFace, Landmark
from models.faces.image import BgrImage

# A face smaller than this (pixels between the eyes' centres) is "too small". Shrinking the portraits:
# drift <= 0.06 down to 20 px, 0.04-0.14 at 16 px, 0.14-0.18 at 12 px; 24 px keeps a margin.
MIN_EYE_DISTANCE = 24.0

# Mean grey level (0-255) of the face's inner region on the chip below which it is "too dark". Exposure
# scaled down: drift crossed 0.10 at means of 19-25 (0.12-0.16 at 11-23), 25 is the safe side.
MIN_BRIGHTNESS = 25.0

# Variance of the Laplacian of the chip's inner region below which it is "too blurred". Gaussian blur in
# chip pixels: sigma 1.0 gave 43-80 (drift <= 0.06), sigma 1.5 gave 17-36 (drift 0.06-0.13); clean
# portraits 318-612, faces shrunk to 24 px between the eyes 136-223.
MIN_SHARPNESS = 35.0

# Yaw, estimated as atan(nose offset / NOSE_DEPTH) where the offset is the nose tip's distance from the
# eyes' midpoint along the eye line, in eye distances, and the tip stands NOSE_DEPTH eye distances in
# front of the eyes (anthropometry: ~30 mm before ~63 mm between the pupils). On insightface's t1.jpg the
# face turned away reads 56 degrees, the half-turned one 32; the four portraits read 2-24 with either
# detector. Beyond 30 degrees is "too far from frontal".
NOSE_DEPTH = 0.5
MAX_YAW_DEGREES = 30.0

# Roll (the eye line's tilt): alignment undoes it, and the pipeline measures tilted faces again upright
# (detect.upright), but the embedding still degrades on strongly tilted heads. Turning the portraits (their
# own tilt 0-11 degrees) by up to 45: drift <= 0.10 while the roll read was <= 30, except Biden's two
# turns read at 31 (drift 0.30 and 0.33); portraits turned by 20 read 16-26. 25 keeps off both.
MAX_ROLL_DEGREES = 25.0

# Another face at least this fraction of the largest one's size makes the photo "several faces": two
# people of comparable size leave the subject in doubt; a bystander far behind does not.
OTHER_FACE_FRACTION = 0.5

# The chip's inner face region on the 112-pixel ArcFace template (eyes at y 52, mouth at y 92): brightness
# and sharpness are measured here, not on the background.
_INNER = (slice(24, 104), slice(20, 92))


class Refusal(enum.StrEnum):
    """Why a photo cannot be enrolled."""

    NOT_AN_IMAGE = "not_an_image"
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    FACE_TOO_SMALL = "face_too_small"
    NOT_FRONTAL = "not_frontal"
    TOO_DARK = "too_dark"
    TOO_BLURRED = "too_blurred"


@dataclass(frozen=True, slots=True)
class Limits:
    min_eye_distance: float = MIN_EYE_DISTANCE
    min_brightness: float = MIN_BRIGHTNESS
    min_sharpness: float = MIN_SHARPNESS
    max_yaw_degrees: float = MAX_YAW_DEGREES
    max_roll_degrees: float = MAX_ROLL_DEGREES
    other_face_fraction: float = OTHER_FACE_FRACTION


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Quality:
    """A face's measures: eye distance (px), yaw and roll (degrees, signed), brightness (0-255) and
    sharpness (variance of the Laplacian) on its chip."""

    eye_distance: float
    yaw_degrees: float
    roll_degrees: float
    brightness: float
    sharpness: float


@dataclass(frozen=True, slots=True)
class Problem:
    reason: Refusal
    detail: str


def pose(face: DetectedFace) -> tuple[float, float]:
    """(yaw, roll) in degrees from the eyes and the nose tip; 0, 0 for a frontal, upright face."""
    (rx, ry), (lx, ly) = face.landmarks[Landmark.RIGHT_EYE], face.landmarks[Landmark.LEFT_EYE]
    nx, ny = face.landmarks[Landmark.NOSE_TIP]
    span = math.hypot(lx - rx, ly - ry) or 1e-9
    along = ((nx - (rx + lx) / 2) * (lx - rx) + (ny - (ry + ly) / 2) * (ly - ry)) / span**2
    return math.degrees(math.atan2(along, NOSE_DEPTH)), face.roll


def measure(image: BgrImage, face: DetectedFace) -> Quality:
    """`face`'s quality measures in `image`."""
    chip = align(image, face, ARCFACE_112).image
    inner = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY)[_INNER]
    sharpness = float(cv2.Laplacian(inner, cv2.CV_64F).var())
    yaw, roll = pose(face)
    return Quality(face.eye_distance, yaw, roll, float(np.mean(inner)), sharpness)


def problems(quality: Quality, limits: Limits = DEFAULT_LIMITS) -> list[Problem]:
    """What is wrong with a face of this quality, in the order the gate reports them; [] if nothing is."""
    found = []
    # A turned head shows its eyes closer together by cos(yaw): its size is judged as if it faced the
    # camera, so that a face turned away is called that, not small.
    facing = quality.eye_distance / max(0.3, math.cos(math.radians(quality.yaw_degrees)))
    if facing < limits.min_eye_distance:
        found.append(
            Problem(
                Refusal.FACE_TOO_SMALL,
                f"{facing:.0f} px between the eyes (facing the camera), under {limits.min_eye_distance:.0f}",
            )
        )
    if abs(quality.yaw_degrees) > limits.max_yaw_degrees:
        found.append(
            Problem(
                Refusal.NOT_FRONTAL,
                f"turned {abs(quality.yaw_degrees):.0f} degrees, over {limits.max_yaw_degrees:.0f}",
            )
        )
    if abs(quality.roll_degrees) > limits.max_roll_degrees:
        found.append(
            Problem(
                Refusal.NOT_FRONTAL,
                f"tilted {abs(quality.roll_degrees):.0f} degrees, over {limits.max_roll_degrees:.0f}",
            )
        )
    if quality.brightness < limits.min_brightness:
        found.append(
            Problem(
                Refusal.TOO_DARK,
                f"face brightness {quality.brightness:.0f}, under {limits.min_brightness:.0f}",
            )
        )
    # A dark face is also a flat one: blur is judged only on faces bright enough to show detail.
    elif quality.sharpness < limits.min_sharpness:
        found.append(
            Problem(
                Refusal.TOO_BLURRED, f"sharpness {quality.sharpness:.0f}, under {limits.min_sharpness:.0f}"
            )
        )
    return found


@dataclass(frozen=True, slots=True, eq=False)
class Accepted:
    face: DetectedFace
    quality: Quality


@dataclass(frozen=True, slots=True, eq=False)
class Refused:
    reason: Refusal
    detail: str
    quality: Quality | None = None


def judge(
    image: BgrImage, faces: Sequence[DetectedFace], limits: Limits = DEFAULT_LIMITS
) -> Accepted | Refused:
    """The gate on a decoded photo and the faces found in it: the one face to enrol, or why not."""
    if not faces:
        return Refused(Refusal.NO_FACE, "no face found")
    largest = max(faces, key=lambda face: face.eye_distance)
    others = [
        face
        for face in faces
        if face is not largest and face.eye_distance >= limits.other_face_fraction * largest.eye_distance
    ]
    if others:
        return Refused(
            Refusal.SEVERAL_FACES, f"{len(others) + 1} faces of comparable size; a photo must show one person"
        )
    quality = measure(image, largest)
    found = problems(quality, limits)
    if found:
        return Refused(found[0].reason, found[0].detail, quality)
    return Accepted(largest, quality)
