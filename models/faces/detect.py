"""Face detection: one `Detector` interface, two backends (OpenCV's YuNet, MediaPipe's BlazeFace).

Landmarks are named, in the subject's frame: `RIGHT_EYE` is the person's right eye, which is on the image's
left in an unmirrored frontal photo. Both models use this convention, so no backend swaps anything.
YuNet gives five points (both eyes, nose tip, both mouth corners); BlazeFace six (both eyes, nose tip, the
mouth's centre, both ear tragions). A face carries what its detector measured and nothing invented;
alignment uses the landmarks a face and a template have in common (align.py).

Every model comes in as bytes; a detector owns native resources, so close it (or use it as a context
manager): MediaPipe's otherwise fails in its `__del__` at exit.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, TypeAlias

import cv2
import numpy as np

from models.faces.errors import ModelLoadError
from models.faces.image import BgrImage, check_bgr, warp

Point: TypeAlias = tuple[float, float]


class Landmark(enum.StrEnum):
    """A named face point, in the subject's left/right."""

    RIGHT_EYE = "right_eye"
    LEFT_EYE = "left_eye"
    NOSE_TIP = "nose_tip"
    MOUTH_RIGHT = "mouth_right"
    MOUTH_LEFT = "mouth_left"
    MOUTH_CENTER = "mouth_center"
    RIGHT_EAR = "right_ear"
    LEFT_EAR = "left_ear"


@dataclass(frozen=True, slots=True)
class Box:
    """A face's box in pixels: top-left corner, width and height (it may reach past the image's edge)."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True, eq=False)
class DetectedFace:
    """One face: its box, the detector's confidence (0-1) and the landmarks it measured, in pixels."""

    box: Box
    score: float
    landmarks: Mapping[Landmark, Point]

    @property
    def eye_distance(self) -> float:
        """Pixels between the eyes' centres: the face's size, comparable across detectors (boxes are not)."""
        (rx, ry), (lx, ly) = self.landmarks[Landmark.RIGHT_EYE], self.landmarks[Landmark.LEFT_EYE]
        return math.hypot(lx - rx, ly - ry)

    @property
    def box_centre(self) -> Point:
        return (self.box.x + self.box.w / 2, self.box.y + self.box.h / 2)

    @property
    def roll(self) -> float:
        """The eye line's tilt in degrees, positive when the face leans clockwise in the image."""
        (rx, ry), (lx, ly) = self.landmarks[Landmark.RIGHT_EYE], self.landmarks[Landmark.LEFT_EYE]
        return math.degrees(math.atan2(ly - ry, lx - rx))

    def scaled(self, factor: float) -> DetectedFace:
        """The same face in an image `factor` times the size of the one it was found in."""
        b = self.box
        return DetectedFace(
            Box(b.x * factor, b.y * factor, b.w * factor, b.h * factor),
            self.score,
            {name: (x * factor, y * factor) for name, (x, y) in self.landmarks.items()},
        )


class Detector(Protocol):
    """Finds faces in an 8-bit BGR image, best first; faces under its minimum confidence are left out."""

    def detect(self, image: BgrImage) -> list[DetectedFace]: ...

    def close(self) -> None: ...


class _Closing:
    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def detect_scaled(detector: Detector, image: BgrImage, max_side: int) -> list[DetectedFace]:
    """`detector`'s faces in `image`, found on a copy shrunk so that its longer side is at most `max_side`
    (faces in enrolment photos are large, and YuNet's cost grows with the pixels) and given back in
    `image`'s own pixels."""
    check_bgr(image)
    side = max(image.shape[:2])
    if side <= max_side:
        return detector.detect(image)
    factor = max_side / side
    small = np.asarray(cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA), np.uint8)
    return [face.scaled(1 / factor) for face in detector.detect(small)]


# A face tilted more than this is found again on a copy of its surroundings turned upright (`upright`):
# the models' landmarks lean towards upright on tilted heads. Turning the three Obama portraits of
# face_recognition's test images by 45 degrees, YuNet read rolls of 20-34 and the SFace embedding moved
# 0.32-0.55 (cosine) from the upright photo's; found again upright, at most 0.11 (turned by 30: at most
# 0.08 instead of 0.18). YuNet read one of them turned by 30 as 12, hence a low trigger.
UPRIGHT_MIN_ROLL = 8.0
# A pass whose copy reads a roll under this is the last: each costs a detection (~3-7 ms here).
UPRIGHT_DONE_ROLL = 5.0
# The copy is UPRIGHT_COPY_SCALE times the face's box, scaled so that the box is UPRIGHT_FACE_SIDE pixels.
# Smaller boxes read less of the tilt: turning obama.jpg by 45 degrees, three passes read 26 at 96 px, 44-47
# at 128-192 px. A smaller copy is cheaper and a little less exact: over the Obama portraits turned by 10-45
# degrees, the worst drift was 0.092 / 0.108 / 0.138 with copies of 3 / 2.5 / 2 boxes, and the three tilted
# faces of a 640x480 frame took 35 / 21 / 13 ms (YuNet reads a 320x320 copy in ~3 ms).
UPRIGHT_FACE_SIDE = 128.0
UPRIGHT_COPY_SCALE = 2.5


def upright(detector: Detector, image: BgrImage, face: DetectedFace, passes: int = 3) -> DetectedFace:
    """`face` with its landmarks measured again on a copy of its surroundings turned by its roll, when the
    roll is over UPRIGHT_MIN_ROLL, until a copy reads under UPRIGHT_DONE_ROLL or after `passes` turns; its
    box and score stay the first detection's. When a copy shows no face, the face is given back as it was."""
    if passes < 1 or abs(face.roll) < UPRIGHT_MIN_ROLL:
        return face
    box = face.box
    zoom = UPRIGHT_FACE_SIDE / max(box.w, box.h)
    size = round(UPRIGHT_COPY_SCALE * UPRIGHT_FACE_SIDE)
    # The face's surroundings, scaled once by `zoom`, large enough for any turn of the copy (half its
    # diagonal); `to_local` takes image pixels to these.
    reach = size / 2 * math.sqrt(2) + 2
    centre = np.array(face.box_centre) * zoom
    to_local = np.array([[zoom, 0.0, reach - centre[0]], [0.0, zoom, reach - centre[1]]])
    local = warp(image, to_local, (round(2 * reach),) * 2, replicate=True)
    from_local = np.linalg.inv(np.vstack([to_local, [0, 0, 1]]))
    for _ in range(passes):
        # Local pixels to the copy: turn by the roll (anticlockwise in OpenCV's sense) about the face's
        # centre, which goes to the copy's middle.
        angle = math.radians(face.roll)
        turn = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
        to_copy = np.hstack([turn, (size / 2 - turn @ np.array([reach, reach]))[:, None]])
        found = detector.detect(warp(local, to_copy, (size, size), replicate=True))
        if not found:
            break
        middle = np.array([size / 2, size / 2])
        centred = min(found, key=lambda f: float(np.hypot(*(np.array(f.box_centre) - middle))))
        back = from_local @ np.vstack([np.linalg.inv(np.vstack([to_copy, [0, 0, 1]]))[:2], [0, 0, 1]])
        points = {
            name: (
                float(back[0, 0] * x + back[0, 1] * y + back[0, 2]),
                float(back[1, 0] * x + back[1, 1] * y + back[1, 2]),
            )
            for name, (x, y) in centred.landmarks.items()
        }
        face = DetectedFace(face.box, face.score, points)
        if abs(centred.roll) < UPRIGHT_DONE_ROLL:
            break
    return face


# YuNet's rows: box (4), then x, y of right eye, left eye, nose tip, right and left mouth corner, then score.
_YUNET_POINTS = (
    Landmark.RIGHT_EYE,
    Landmark.LEFT_EYE,
    Landmark.NOSE_TIP,
    Landmark.MOUTH_RIGHT,
    Landmark.MOUTH_LEFT,
)


class YuNetDetector(_Closing):
    """OpenCV Zoo's YuNet through `cv2.FaceDetectorYN`, created from the ONNX file's bytes.

    A `FaceDetectorYN` is built for one input size, and changing it costs ~7 ms here (a 640x480 frame
    and a 288x288 copy, alternately: 21.7 ms against 15 at fixed sizes), so one is kept per size for the
    last `_SIZES_KEPT` sizes: a camera's frames and `upright`'s copies each keep theirs.
    """

    _SIZES_KEPT = 4

    def __init__(
        self,
        model: bytes,
        *,
        min_confidence: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
    ) -> None:
        self.min_confidence = min_confidence
        self._model = np.frombuffer(model, np.uint8)
        self._settings = (min_confidence, nms_threshold, top_k)
        self._nets: dict[tuple[int, int], cv2.FaceDetectorYN] = {}
        self._closed = False
        self._net((320, 320))  # fails now, not at the first frame, if the bytes are not YuNet's

    def _net(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        net = self._nets.pop(size, None)
        if net is None:
            try:
                net = cv2.FaceDetectorYN.create(
                    "onnx", self._model, np.zeros(0, np.uint8), size, *self._settings
                )
            except cv2.error as err:
                raise ModelLoadError("YuNet", f"OpenCV cannot load it: {err.err}") from err
            if len(self._nets) >= self._SIZES_KEPT:
                del self._nets[next(iter(self._nets))]
        self._nets[size] = net  # most recently used last
        return net

    def detect(self, image: BgrImage) -> list[DetectedFace]:
        if self._closed:
            raise ValueError("detect() on a closed YuNetDetector")
        check_bgr(image)
        _, rows = self._net((image.shape[1], image.shape[0])).detect(image)
        if rows is None:
            return []
        faces = [
            DetectedFace(
                Box(*(float(v) for v in row[:4])),
                float(row[14]),
                {
                    name: (float(row[4 + 2 * i]), float(row[5 + 2 * i]))
                    for i, name in enumerate(_YUNET_POINTS)
                },
            )
            for row in rows
        ]
        return sorted(faces, key=lambda face: -face.score)

    def close(self) -> None:
        self._nets.clear()
        self._closed = True


# BlazeFace's keypoints, in its order (MediaPipe's face detector documentation).
_BLAZEFACE_POINTS = (
    Landmark.RIGHT_EYE,
    Landmark.LEFT_EYE,
    Landmark.NOSE_TIP,
    Landmark.MOUTH_CENTER,
    Landmark.RIGHT_EAR,
    Landmark.LEFT_EAR,
)


class BlazeFaceDetector(_Closing):
    """MediaPipe Tasks' `FaceDetector` on one of BlazeFace's `.tflite` models (short range: faces within
    ~2 m, 128 px input; full range: within ~5 m, 192 px), from the file's bytes, one image at a time."""

    def __init__(self, model: bytes, *, min_confidence: float = 0.5, nms_threshold: float = 0.3) -> None:
        # Imported here, not at the top: mediapipe takes ~0.6 s to import, which a program that detects
        # with YuNet (or only decodes and matches) should not pay.
        import mediapipe as mp  # type: ignore[import-untyped]  # mediapipe 1.2.3 ships no py.typed
        from mediapipe.tasks.python import BaseOptions, vision  # type: ignore[import-untyped]

        self.min_confidence = min_confidence
        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=model),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=min_confidence,
            min_suppression_threshold=nms_threshold,
        )
        try:
            self._task = vision.FaceDetector.create_from_options(options)
        except (ValueError, RuntimeError) as err:
            raise ModelLoadError("BlazeFace", f"MediaPipe cannot load it: {err}") from err

    def detect(self, image: BgrImage) -> list[DetectedFace]:
        if self._task is None:
            raise ValueError("detect() on a closed BlazeFaceDetector")
        height, width = check_bgr(image).shape[:2]
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        result = self._task.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb))
        faces = []
        for found in result.detections:
            b = found.bounding_box
            points = {
                name: (float(k.x) * width, float(k.y) * height)
                for name, k in zip(_BLAZEFACE_POINTS, found.keypoints, strict=True)
            }
            score = float(found.categories[0].score)
            faces.append(
                DetectedFace(
                    Box(float(b.origin_x), float(b.origin_y), float(b.width), float(b.height)), score, points
                )
            )
        return sorted(faces, key=lambda face: -face.score)

    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None
