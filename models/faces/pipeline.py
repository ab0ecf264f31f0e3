"""One object both programs run: a detector, the alignment to the embedder's template, and the embedder.

`faces(image)` finds and embeds every face of a frame (`robot-agent faces identify`, the benchmarks); it is
`locate`, then `upright` and the eye-distance filter, then `embed`'s alignment and batch, and the robot's
face watcher calls `locate` and `embed` itself, to embed only the faces it has not named in the last frames.
`enrol_image(bytes)` is the cloud's (and `robot-agent faces enroll`'s): the quality gate first, then one
embedding or the reason for refusing; `enrol_frame(image)` the same on a decoded camera frame (the local API's
enrolment from the camera). A pipeline holds native sessions that are not safe to share between
threads: give each worker thread its own, and run it off an asyncio loop (it blocks for tens of
milliseconds).
"""

from __future__ import annotations

from collections.abc import Sequence
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
        return [self.upright(image, face) for face in self.locate(image)]

    def locate(self, image: BgrImage) -> list[DetectedFace]:
        """The faces in `image` as the detector measured them, best first: one detection of the frame, before
        any per-face work (`upright`, alignment, embedding), for a caller that chooses which faces to embed
        (the robot's face watcher follows faces from frame to frame, models.faces.track)."""
        return detect_scaled(self.detector, image, self.max_detection_side)

    def upright(self, image: BgrImage, face: DetectedFace) -> DetectedFace:
        """`face` measured again upright if it is tilted (detect.upright): a few detections a tilted face."""
        return upright(self.detector, image, face, self.upright_passes)

    def embed(self, image: BgrImage, located: Sequence[DetectedFace]) -> list[FoundFace]:
        """The faces `locate` found in `image` (some or all), each made upright, aligned and embedded (one
        batch), in their order; `faces()` does the same for every face big enough once upright."""
        return self._embedded(image, [self.upright(image, face) for face in located])

    def faces(self, image: BgrImage, min_eye_distance: float = 0.0) -> list[FoundFace]:
        """Every face in `image` at least `min_eye_distance` pixels between the eyes (once upright), best
        detection first, each with its embedding (all embedded in one batch)."""
        return self._embedded(
            image, [face for face in self.detect(image) if face.eye_distance >= min_eye_distance]
        )

    def _embedded(self, image: BgrImage, faces: list[DetectedFace]) -> list[FoundFace]:
        template = self.embedder.spec.template
        vectors = self.embedder.embed([align(image, face, template).image for face in faces])
        return [FoundFace(face, vector) for face, vector in zip(faces, vectors, strict=True)]

    def enrol_image(self, data: bytes) -> Enrolled | Refused:
        """The embedding of the one face in the photo `data` (file bytes), or the gate's reason to refuse."""
        try:
            image = decode_image(data)
        except ImageError as err:
            return Refused(Refusal.NOT_AN_IMAGE, str(err))
        return self.enrol_frame(image)

    def enrol_frame(self, image: BgrImage) -> Enrolled | Refused:
        """The embedding of the one face in a decoded image (a camera's frame), or the gate's reason."""
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
