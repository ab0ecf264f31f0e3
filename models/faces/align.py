"""Alignment: the similarity transform (rotation, uniform scale, translation) that puts a face's landmarks
on an embedder's template, and the chip it cuts.

The transform is Umeyama's closed-form least squares over every landmark the face and the template share,
in numpy: deterministic, no reflection, every point weighed equally. (`cv2.estimateAffinePartial2D` was not
taken: its default RANSAC, with four or five points, may throw a point away instead of averaging it.)
A YuNet face shares five points with each template; a BlazeFace face four: both eyes, the nose tip and the
mouth's centre, which a template places midway between its mouth corners.

Templates are data, one per embedder family, in the chip's pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.faces.detect import DetectedFace, Landmark, Point
from models.faces.errors import FacesError
from models.faces.image import BgrImage, warp

Matrix = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Template:
    """Where an embedder expects the landmarks, in the pixels of its `size` x `size` chip."""

    name: str
    size: int
    points: Mapping[Landmark, Point]


def five_point_template(name: str, size: int, points: tuple[Point, Point, Point, Point, Point]) -> Template:
    """A template from the five points (right eye, left eye, nose tip, right and left mouth corner) with
    the mouth's centre midway between the corners, so that BlazeFace's mouth point has its place."""
    right_eye, left_eye, nose, mouth_right, mouth_left = points
    centre = ((mouth_right[0] + mouth_left[0]) / 2, (mouth_right[1] + mouth_left[1]) / 2)
    return Template(
        name,
        size,
        {
            Landmark.RIGHT_EYE: right_eye,
            Landmark.LEFT_EYE: left_eye,
            Landmark.NOSE_TIP: nose,
            Landmark.MOUTH_RIGHT: mouth_right,
            Landmark.MOUTH_LEFT: mouth_left,
            Landmark.MOUTH_CENTER: centre,
        },
    )


# InsightFace's ArcFace template, the one OpenCV's `FaceRecognizerSF::alignCrop` puts SFace's chips on.
ARCFACE_112 = five_point_template(
    "arcface_112",
    112,
    ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041)),
)


def _dlib_chip_point(xs: tuple[float, ...], ys: tuple[float, ...]) -> Point:
    # dlib's get_face_chip_details (image_transforms/interpolation.h): a point p of the mean face shape
    # (0-1) lands at (padding + p) / (1 + 2 * padding) * size; dlib's face_recognition_model_v1 cuts its
    # chips at size 150, padding 0.25.
    size, padding = 150, 0.25
    x, y = sum(xs) / len(xs), sum(ys) / len(ys)
    return ((padding + x) / (1 + 2 * padding) * size, (padding + y) / (1 + 2 * padding) * size)


# dlib's mean face shape (interpolation.h, the 68-point iBUG layout, points 17-67): the eyes' centres are the
# means of their six contour points (36-41, 42-47), the nose tip is point 30, the mouth corners 48 and 54.
DLIB_150 = five_point_template(
    "dlib_150",
    150,
    (
        _dlib_chip_point(
            (0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743),
            (0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077),
        ),
        _dlib_chip_point(
            (0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335),
            (0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099),
        ),
        _dlib_chip_point((0.490127,), (0.515625,)),
        _dlib_chip_point((0.254149,), (0.780233,)),
        _dlib_chip_point((0.726104,), (0.780233,)),
    ),
)

TEMPLATES: Mapping[str, Template] = {t.name: t for t in (ARCFACE_112, DLIB_150)}


@dataclass(frozen=True, slots=True, eq=False)
class Chip:
    """An aligned face: the BGR chip, the 2x3 matrix that took image pixels to chip pixels, and the RMS
    distance (chip pixels) between the face's landmarks so mapped and the template's."""

    image: BgrImage
    matrix: Matrix
    residual: float

    @property
    def scale(self) -> float:
        """Chip pixels per image pixel."""
        return math.sqrt(abs(float(np.linalg.det(self.matrix[:, :2]))))


def similarity_transform(source: NDArray[np.float64], target: NDArray[np.float64]) -> Matrix:
    """The 2x3 similarity matrix that maps `source` points (k, 2) closest to `target` (k, 2) in the least
    squares sense (Umeyama 1991, without reflection); k >= 2."""
    count = source.shape[0]
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    s, t = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(t.T @ s / count)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    variance = float((s**2).sum()) / count
    if variance == 0.0:
        raise FacesError("cannot align a face whose landmarks all coincide")
    scale = float(np.trace(np.diag(singular) @ sign)) / variance
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align(image: BgrImage, face: DetectedFace, template: Template) -> Chip:
    """`face` cut from `image` onto `template`; FacesError if they share fewer than three landmarks."""
    shared = [name for name in template.points if name in face.landmarks]
    if len(shared) < 3:
        raise FacesError(
            f"template {template.name} and the face share {len(shared)} landmarks ({', '.join(shared)}); "
            "alignment needs at least three"
        )
    source = np.array([face.landmarks[name] for name in shared], np.float64)
    target = np.array([template.points[name] for name in shared], np.float64)
    matrix = similarity_transform(source, target)
    mapped = source @ matrix[:, :2].T + matrix[:, 2]
    residual = float(np.sqrt(((mapped - target) ** 2).sum(axis=1).mean()))
    return Chip(warp(image, matrix, (template.size, template.size)), matrix, residual)
