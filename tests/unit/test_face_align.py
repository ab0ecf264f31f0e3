"""Alignment's geometry: the similarity transform recovers a known one, never reflects, fits the template
in the least-squares sense, and the chip shows the landmarks where the template puts them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.faces.align import (
    ARCFACE_112,
    DLIB_150,
    TEMPLATES,
    Template,
    align,
    similarity_transform,
)
from models.faces.detect import Box, DetectedFace, Landmark, Point
from models.faces.errors import FacesError

FIVE = (Landmark.RIGHT_EYE, Landmark.LEFT_EYE, Landmark.NOSE_TIP, Landmark.MOUTH_RIGHT, Landmark.MOUTH_LEFT)


def similarity(angle: float, scale: float, dx: float, dy: float) -> np.ndarray:
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[c, -s, dx], [s, c, dy]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points @ matrix[:, :2].T + matrix[:, 2])


def face_at(points: dict[Landmark, Point]) -> DetectedFace:
    return DetectedFace(Box(0, 0, 1, 1), 0.9, points)


def template_face(template: Template, matrix: np.ndarray, names: tuple[Landmark, ...] = FIVE) -> DetectedFace:
    """A face whose landmarks are the template's, moved by `matrix` (template pixels to image pixels)."""
    moved = apply(matrix, np.array([template.points[n] for n in names], np.float64))
    return face_at({n: (float(x), float(y)) for n, (x, y) in zip(names, moved, strict=True)})


@settings(max_examples=200, deadline=None)
@given(
    angle=st.floats(-math.pi, math.pi),
    scale=st.floats(0.05, 20),
    dx=st.floats(-2000, 2000),
    dy=st.floats(-2000, 2000),
)
def test_a_known_similarity_is_recovered_exactly(angle: float, scale: float, dx: float, dy: float) -> None:
    source = np.array(list(ARCFACE_112.points.values()), np.float64)
    truth = similarity(angle, scale, dx, dy)
    found = similarity_transform(source, apply(truth, source))
    assert np.allclose(found, truth, atol=1e-6 * max(1.0, abs(dx), abs(dy)))


def test_mirrored_points_get_the_best_rotation_not_a_reflection() -> None:
    source = np.array(list(ARCFACE_112.points.values()), np.float64)
    mirrored = source * [-1, 1]
    matrix = similarity_transform(source, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_the_fit_is_least_squares() -> None:
    # Noisy landmarks: no small change of the found transform brings them closer to the target.
    rng = np.random.default_rng(7)
    target = np.array(list(ARCFACE_112.points.values()), np.float64)
    source = apply(similarity(0.3, 2.5, 40, 90), target) + rng.normal(0, 3, target.shape)
    found = similarity_transform(source, target)

    def cost(m: np.ndarray) -> float:
        return float(((apply(m, source) - target) ** 2).sum())

    best = cost(found)
    scale, angle = math.hypot(found[0, 0], found[1, 0]), math.atan2(found[1, 0], found[0, 0])
    for d_angle, d_scale, d_x, d_y in [(1e-3, 0, 0, 0), (0, 1e-3, 0, 0), (0, 0, 0.05, 0), (0, 0, 0, 0.05)]:
        for sign in (1, -1):
            nudged = similarity(angle + sign * d_angle, scale * (1 + sign * d_scale), 0, 0)
            nudged[:, 2] = found[:, 2] + sign * np.array([d_x, d_y])
            assert cost(nudged) > best


def test_coincident_landmarks_are_an_error() -> None:
    with pytest.raises(FacesError, match="coincide"):
        similarity_transform(np.ones((3, 2)), np.array(list(ARCFACE_112.points.values())[:3]))


@pytest.mark.parametrize("template", [ARCFACE_112, DLIB_150], ids=lambda t: t.name)
def test_the_chip_shows_the_landmarks_where_the_template_puts_them(template: Template) -> None:
    # Black, with a white 13 px square at each landmark of a face turned 25 degrees, 3x the template's size.
    matrix = similarity(math.radians(25), 3.0, 200, 150)
    face = template_face(template, matrix)
    image = np.zeros((700, 700, 3), np.uint8)
    for x, y in face.landmarks.values():
        image[round(y) - 6 : round(y) + 7, round(x) - 6 : round(x) + 7] = 255
    chip = align(image, face, template)
    assert chip.image.shape == (template.size, template.size, 3)
    assert chip.residual == pytest.approx(0, abs=1e-6)
    assert chip.scale == pytest.approx(1 / 3)
    for name in FIVE:
        x, y = template.points[name]
        assert chip.image[round(y), round(x)].min() > 200, name
    assert chip.image[5, 5].max() == 0


def test_a_blazeface_face_aligns_on_its_four_shared_points() -> None:
    # BlazeFace has the mouth's centre and the ears, no mouth corners: eyes, nose and mouth centre align.
    names = (Landmark.RIGHT_EYE, Landmark.LEFT_EYE, Landmark.NOSE_TIP, Landmark.MOUTH_CENTER)
    face = template_face(ARCFACE_112, similarity(-0.2, 1.7, 30, 20), names)
    ears = {Landmark.RIGHT_EAR: (0.0, 0.0), Landmark.LEFT_EAR: (500.0, 0.0)}
    chip = align(np.zeros((300, 300, 3), np.uint8), face_at({**face.landmarks, **ears}), ARCFACE_112)
    assert chip.residual == pytest.approx(0, abs=1e-6)
    assert chip.scale == pytest.approx(1 / 1.7)


def test_fewer_than_three_shared_landmarks_are_an_error() -> None:
    face = face_at({Landmark.RIGHT_EYE: (10.0, 10.0), Landmark.LEFT_EYE: (30.0, 10.0)})
    with pytest.raises(FacesError, match="share 2 landmarks"):
        align(np.zeros((50, 50, 3), np.uint8), face, ARCFACE_112)


def test_a_large_face_is_shrunk_by_area_before_warping() -> None:
    # A face 8x the chip on a fine checkerboard: warping with bilinear alone would alias it into stripes;
    # area averaging first gives the mean grey.
    checker = (np.indices((1200, 1200)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(checker[:, :, None], 3, axis=2)
    chip = align(image, template_face(ARCFACE_112, similarity(0.1, 8.0, 100, 100)), ARCFACE_112)
    inner = chip.image[20:90, 20:90].astype(np.float64)
    assert abs(inner.mean() - 127.5) < 3
    assert inner.std() < 12


def test_templates_are_where_their_sources_put_them() -> None:
    assert set(TEMPLATES) == {"arcface_112", "dlib_150"}
    # dlib: the mean face's eyes at y ~0.21 of the face, padded by 0.25 on a 150-pixel chip.
    assert DLIB_150.points[Landmark.RIGHT_EYE] == pytest.approx((47.55, 46.60), abs=0.01)
    assert DLIB_150.points[Landmark.LEFT_EYE] == pytest.approx((100.48, 46.60), abs=0.01)
    # Symmetric about the nose (dlib's mean face is, to its 6 digits, about x = 0.490127, not 0.5).
    for template in (ARCFACE_112, DLIB_150):
        right, left = template.points[Landmark.RIGHT_EYE], template.points[Landmark.LEFT_EYE]
        assert (right[0] + left[0]) / 2 == pytest.approx(template.points[Landmark.NOSE_TIP][0], abs=0.5)
        assert right[0] < left[0]
        centre = template.points[Landmark.MOUTH_CENTER]
        mouth = [template.points[Landmark.MOUTH_RIGHT], template.points[Landmark.MOUTH_LEFT]]
        assert centre == pytest.approx(tuple(np.mean(mouth, axis=0)))
