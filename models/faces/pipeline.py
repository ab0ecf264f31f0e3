"""One object both programs run: a detector, the alignment to the embedder's template, and the embedder.

`faces(image)` is the robot's per-frame call; `enrol_image(bytes)` the cloud's (and `robot-agent faces
enroll`'s): the quality gate first, then one embedding or the reason for refusing. A pipeline holds native
sessions that are not safe to share between threads: give each worker thread its own, and run it off an
asyncio loop (it blocks for tens of milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Self

import numpy as np
from numpy.typing import NDArray

from models.faces.align import align
from models.faces.detect import DetectedFace, Detector, detect_scaled, upright
from models.faces.embed import Embedder
from models.faces.errors import ImageError
from models.faces.image import BgrImage, decode_image
from models.faces.quality import DEFAULT_LIMITS, Limits, Quality, Refusal, Refused, judge

# Faces are found on a copy of at most this many pixels on its longer side: no change to a 640x480 camera
# frame; a 12-megapixel enrolment photo is searched at 1280 px (YuNet's cost grows with the pixels).
MAX_DETECTION_SIDE = 1280


@dataclass(frozen=True, slots=True, eq=False)
class FoundFace:
    """A face in a frame and its embedding."""

    face: DetectedFace
    embedding: NDArray[np.float32]


@dataclass(frozen=True, slots=True, eq=False)
class Enrolled:
    """A photo the gate accepted: its one face, the face's measures and its embedding."""

    face: DetectedFace
    quality: Quality
    embedding: NDArray[np.float32]


class FacePipeline:
    """Detector + alignment + embedder; owns both (closing the pipeline closes them)."""

    def __init__(
        self,
        detector: Detector,
        embedder: Embedder,
        *,
        limits: Limits = DEFAULT_LIMITS,
        max_detection_side: int = MAX_DETECTION_SIDE,
        upright_passes: int = 3,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.limits = limits
        self.max_detection_side = max_detection_side
        self.upright_passes = upright_passes

    def detect(self, image: BgrImage) -> list[DetectedFace]:
        """The faces in `image`, tilted ones measured again upright (detect.upright), best first."""
        return [
            upright(self.detector, image, face, self.upright_passes)
            for face in detect_scaled(self.detector, image, self.max_detection_side)
        ]

    def faces(self, image: BgrImage, min_eye_distance: float = 0.0) -> list[FoundFace]:
        """Every face in `image` at least `min_eye_distance` pixels between the eyes, best detection first,
        each with its embedding (all embedded in one batch)."""
        found = [face for face in self.detect(image) if face.eye_distance >= min_eye_distance]
        template = self.embedder.spec.template
        vectors = self.embedder.embed([align(image, face, template).image for face in found])
        return [FoundFace(face, vector) for face, vector in zip(found, vectors, strict=True)]

    def enrol_image(self, data: bytes) -> Enrolled | Refused:
        """The embedding of the one face in the photo `data` (file bytes), or the gate's reason to refuse."""
        try:
            image = decode_image(data)
        except ImageError as err:
            return Refused(Refusal.NOT_AN_IMAGE, str(err))
        verdict = judge(image, self.detect(image), self.limits)
        if isinstance(verdict, Refused):
            return verdict
        chip = align(image, verdict.face, self.embedder.spec.template)
        return Enrolled(verdict.face, verdict.quality, self.embedder.embed([chip.image])[0])

    def close(self) -> None:
        self.detector.close()
        self.embedder.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
