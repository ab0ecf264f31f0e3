"""Camera frames that show a real face: a portrait from var/test-faces scaled into a frame, beside a QR code
if asked, as a robot's camera would see a passenger holding up a phone."""

from __future__ import annotations

import cv2
import numpy as np

from models.faces.image import BgrImage, decode_image
from tests.support.face_files import face_photo
from tests.support.qr_images import render_qr

GREY = 228


def portrait_frame(photo: str, size: tuple[int, int] = (640, 480)) -> BgrImage:
    """The photo scaled to fit a `size` (width, height) frame, centred on light grey."""
    width, height = size
    image = decode_image(face_photo(photo))
    scale = min(width / image.shape[1], height / image.shape[0])
    scaled = cv2.resize(
        image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    frame = np.full((height, width, 3), GREY, np.uint8)
    top, left = (height - scaled.shape[0]) // 2, (width - scaled.shape[1]) // 2
    frame[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    return frame


def face_and_code_frame(photo: str, code: str) -> BgrImage:
    """A 640x480 frame: the code on the left half, the portrait on the right."""
    return np.hstack([render_qr(code, size=(320, 480)), portrait_frame(photo, (320, 480))])


def drifting(
    image: BgrImage, n: int, step: tuple[float, float] = (2.0, 1.0), zoom: float = 0.003
) -> BgrImage:
    """Frame `n` of a video where `image`'s content drifts `step` pixels (x, y) a frame and grows by `zoom`
    a frame about the middle, as people standing at a door move between frames at 15 frames/s; the
    uncovered edge repeats the border."""
    height, width = image.shape[:2]
    scale = 1 + zoom * n
    moved = np.array(
        [
            [scale, 0, (1 - scale) * width / 2 + step[0] * n],
            [0, scale, (1 - scale) * height / 2 + step[1] * n],
        ]
    )
    return np.asarray(
        cv2.warpAffine(
            image, moved, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ),
        np.uint8,
    )


def two_people_frame(left: str, right: str) -> BgrImage:
    """A 640x480 frame: one portrait on each half."""
    return np.hstack([portrait_frame(left, (320, 480)), portrait_frame(right, (320, 480))])
