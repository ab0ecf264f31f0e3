"""The real faces the face benchmarks run on, from `make setup`'s directories, checked against their
manifests; and the systems compared on them: our pipelines by name (models/faces/choice.py) and the
`face_recognition` library.

The photos: face_recognition 1.3.0's Obama (three photographs, and two crops of the first), Biden,
insightface's t1.jpg (six people at a card table) and its aligned Tom Hanks: nine identities, one of them
(Obama) in more than one photograph. Portraits are scaled to 640 px on their longer side, a robot camera's
frame width (their faces are then 36-66 px between the eyes); t1.jpg's six people are cut from the photo as
it is (26-52 px), one 300 px square per person centred on a hand-placed point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

from bench.face_eval import Sample
from models.faces.choice import DetectorName, EmbedderName, PipelineChoice
from models.faces.detect import Box, Point
from models.faces.image import BgrImage, decode_image, warp
from models.faces.manifest import ModelName
from models.faces.pipeline import FacePipeline
from models.model_files import ModelFileError, load_model
from robot_agent.weights.directory import read_test_face
from tests.support import face_augment

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "var" / "models"
TEST_FACES_DIR = ROOT / "var" / "test-faces"

EVAL_SIDE = 640
# t1.jpg's six faces, counted by hand (looking at the photo, once): each point is roughly the middle of a
# face (the nose), in the photo's own 1280x886 pixels, left to right. Two women at the left (one looking down
# at her cards, one leaning on the chair behind), two men at the middle of the table, one man standing at the
# back right (looking away to his right, his face half turned), one woman at the right.
GROUP_PHOTO = "t1.jpg"
GROUP_FACES: Final[tuple[Point, ...]] = (
    (120.0, 330.0),
    (330.0, 200.0),
    (520.0, 320.0),
    (800.0, 390.0),
    (960.0, 130.0),
    (1180.0, 330.0),
)
GROUP_CROP = 300


def _checked(name: str) -> bytes:
    try:
        return read_test_face(TEST_FACES_DIR, name)
    except ModelFileError as err:
        raise SystemExit(str(err)) from err


def photo(name: str) -> BgrImage:
    """A real photo from var/test-faces, checked against its manifest."""
    return decode_image(_checked(name))


def model(name: ModelName) -> bytes:
    """A model file from var/models, checked against its manifest."""
    try:
        return load_model(MODELS_DIR, name)
    except ModelFileError as err:
        raise SystemExit(str(err)) from err


def scaled(image: BgrImage, factor: float) -> BgrImage:
    if factor == 1:
        return image
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation), np.uint8)


def cut(image: BgrImage, centre: Point, side: int) -> BgrImage:
    """The `side` x `side` square of `image` centred on `centre`, edges repeated where it reaches past."""
    matrix = np.array([[1.0, 0.0, side / 2 - centre[0]], [0.0, 1.0, side / 2 - centre[1]]])
    return warp(image, matrix, (side, side), replicate=True)


@dataclass(frozen=True, slots=True, eq=False)
class Source:
    """One image of one identity, before augmentation. `photo` names the photograph it comes from; a
    `centred` image's face is the one nearest its middle (t1's crops show a neighbour's face at an edge),
    otherwise the largest found."""

    name: str
    identity: str
    photo: str
    image: BgrImage
    centred: bool


def sources() -> list[Source]:
    """The evaluation's 13 images of 9 identities (see the module's docstring)."""
    made = []
    obama = photo("obama.jpg")
    obama_factor = EVAL_SIDE / max(obama.shape[:2])
    for name, identity in (
        ("obama.jpg", "obama"),
        ("obama2.jpg", "obama"),
        ("obama3.jpg", "obama"),
        ("biden.jpg", "biden"),
    ):
        image = photo(name)
        made.append(Source(name, identity, name, scaled(image, EVAL_SIDE / max(image.shape[:2])), False))
    # Crops of obama.jpg, at obama.jpg's scale: the same face, other framings.
    for name in ("obama_partial_face.jpg", "obama_partial_face2.jpg"):
        made.append(Source(name, "obama", "obama.jpg", scaled(photo(name), obama_factor), False))
    made.append(
        Source("Tom_Hanks_54745.png", "hanks", "Tom_Hanks_54745.png", photo("Tom_Hanks_54745.png"), False)
    )
    group = photo(GROUP_PHOTO)
    for n, centre in enumerate(GROUP_FACES, 1):
        made.append(
            Source(f"t1 person {n}", f"t1 person {n}", GROUP_PHOTO, cut(group, centre, GROUP_CROP), True)
        )
    return made


def variants(image: BgrImage) -> list[tuple[str, BgrImage]]:
    """The image itself ("clean") and each of the tests' standard augmentations of it."""
    return [("clean", image), *((name, change(image)) for name, change in face_augment.STANDARD.items())]


@dataclass(frozen=True, slots=True, eq=False)
class Found:
    """A face a system found: its box and its embedding."""

    box: Box
    vector: NDArray[np.floating[Any]]


System = Callable[[BgrImage], list[Found]]


def pick(found: list[Found], image: BgrImage, centred: bool) -> Found | None:
    """The face an evaluation image is about: nearest the middle for a `centred` image, else the largest."""
    if not found:
        return None
    if centred:
        middle = (image.shape[1] / 2, image.shape[0] / 2)
        return min(
            found,
            key=lambda f: np.hypot(f.box.x + f.box.w / 2 - middle[0], f.box.y + f.box.h / 2 - middle[1]),
        )
    return max(found, key=lambda f: f.box.w * f.box.h)


Image = tuple[Source, str, BgrImage]  # a source, a variant's name, the varied image


def images() -> list[Image]:
    """The evaluation's 169 images: each source clean and under each standard augmentation."""
    return [(source, name, image) for source in sources() for name, image in variants(source.image)]


def samples(system: System, shown: Sequence[Image]) -> list[Sample]:
    """What `system` makes of each image: the face it is about (`pick`), embedded, or None when missed."""
    made = []
    for source, variant, image in shown:
        found = pick(system(image), image, source.centred)
        vector = None if found is None else found.vector
        made.append(Sample(source.identity, source.photo, source.name, variant, vector))
    return made


def pipeline(detector: DetectorName, embedder: EmbedderName, **options: Any) -> FacePipeline:
    """One of our pipelines, built from set-up's model directory."""
    return PipelineChoice(detector=detector, embedder=embedder, **options).build(model)


def pipeline_system(faces: FacePipeline) -> System:
    return lambda image: [Found(f.face.box, f.embedding) for f in faces.faces(image)]


def face_recognition_system() -> System:
    """The `face_recognition` library as its README uses it: `face_locations` (dlib's HOG detector, upsampled
    once) then `face_encodings` (dlib's 5-point landmarks and ResNet, one jitter), on RGB."""
    import face_recognition  # type: ignore[import-untyped]  # the bench group's; loads dlib's models at import

    def run(image: BgrImage) -> list[Found]:
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        places = face_recognition.face_locations(rgb)
        vectors = face_recognition.face_encodings(rgb, places)
        return [
            Found(Box(float(left), float(top), float(right - left), float(bottom - top)), np.asarray(vector))
            for (top, right, bottom, left), vector in zip(places, vectors, strict=True)
        ]

    return run
