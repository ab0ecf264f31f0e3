"""The quality gate's logic on made-up faces: pose from landmarks, each limit's reason, which face counts
as a second one, and the order reasons are reported in. (Real photos: tests/integration.)"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from models.faces.align import ARCFACE_112
from models.faces.detect import Box, DetectedFace, Landmark, Point
from models.faces.quality import (
    DEFAULT_LIMITS,
    NOSE_DEPTH,
    Accepted,
    Quality,
    Refusal,
    Refused,
    judge,
    pose,
    problems,
)

GOOD = Quality(eye_distance=100, yaw_degrees=3, roll_degrees=-2, brightness=120, sharpness=300)


def face(
    scale: float = 1.0, dx: float = 0.0, roll_degrees: float = 0.0, nose_shift: float = 0.0
) -> DetectedFace:
    """A face with the ArcFace template's landmarks, scaled, turned in the image plane and moved; the nose
    shifted along the eye line by `nose_shift` eye distances (a head turned left or right)."""
    angle = math.radians(roll_degrees)
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    eye_span = ARCFACE_112.points[Landmark.LEFT_EYE][0] - ARCFACE_112.points[Landmark.RIGHT_EYE][0]
    points: dict[Landmark, Point] = {}
    for name, (x, y) in ARCFACE_112.points.items():
        if name is Landmark.NOSE_TIP:
            x += nose_shift * eye_span
        points[name] = (c * x - s * y + dx, s * x + c * y)
    return DetectedFace(Box(dx, 0, 112 * scale, 112 * scale), 0.9, points)


def test_a_frontal_upright_face_has_no_yaw_or_roll() -> None:
    yaw, roll = pose(face(scale=3))
    # The ArcFace template's own eyes are 0.2 pixel off level, and its nose a hair off centre.
    assert abs(yaw) < 1.5
    assert abs(roll) < 0.5


@pytest.mark.parametrize("degrees", [-40, -10, 15, 60])
def test_roll_is_the_eye_lines_tilt(degrees: float) -> None:
    assert pose(face(roll_degrees=degrees))[1] == pytest.approx(degrees, abs=0.5)


@pytest.mark.parametrize("yaw", [-50, -20, 10, 35])
def test_yaw_comes_from_the_noses_offset_whatever_the_roll(yaw: float) -> None:
    shift = NOSE_DEPTH * math.tan(math.radians(yaw))
    for roll in (0, 20):
        assert pose(face(roll_degrees=roll, nose_shift=shift))[0] == pytest.approx(yaw, abs=1.5)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"eye_distance": 20.0}, Refusal.FACE_TOO_SMALL),
        ({"yaw_degrees": -31.0}, Refusal.NOT_FRONTAL),
        ({"roll_degrees": 26.0}, Refusal.NOT_FRONTAL),
        ({"brightness": 20.0}, Refusal.TOO_DARK),
        ({"sharpness": 30.0}, Refusal.TOO_BLURRED),
    ],
)
def test_each_limit_has_its_reason(change: dict[str, float], reason: Refusal) -> None:
    assert problems(GOOD) == []
    found = problems(dataclasses.replace(GOOD, **change))
    assert [p.reason for p in found] == [reason]
    assert found[0].detail


def test_reasons_come_in_order_and_a_dark_face_is_not_also_called_blurred() -> None:
    awful = Quality(eye_distance=10, yaw_degrees=45, roll_degrees=0, brightness=5, sharpness=1)
    assert [p.reason for p in problems(awful)] == [
        Refusal.FACE_TOO_SMALL,
        Refusal.NOT_FRONTAL,
        Refusal.TOO_DARK,
    ]


def textured(size: int = 400) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(60, 200, (size, size, 3), dtype=np.uint8)


def test_no_face_is_refused() -> None:
    verdict = judge(textured(), [])
    assert isinstance(verdict, Refused)
    assert verdict.reason is Refusal.NO_FACE


def test_two_faces_of_comparable_size_are_refused() -> None:
    verdict = judge(textured(), [face(scale=1.0), face(scale=0.6, dx=200)])
    assert isinstance(verdict, Refused)
    assert verdict.reason is Refusal.SEVERAL_FACES
    assert verdict.detail.startswith("2 faces")


def test_a_much_smaller_face_behind_the_subject_is_not_a_second_one() -> None:
    subject, bystander = face(scale=2.0), face(scale=0.9, dx=250)
    assert bystander.eye_distance < DEFAULT_LIMITS.other_face_fraction * subject.eye_distance
    verdict = judge(textured(), [bystander, subject])
    assert isinstance(verdict, Accepted)
    assert verdict.face is subject
    assert verdict.quality.eye_distance == pytest.approx(subject.eye_distance)


def test_the_gate_measures_brightness_and_sharpness_on_the_face() -> None:
    flat = np.full((400, 400, 3), 90, np.uint8)
    verdict = judge(flat, [face(scale=2.0)])
    assert isinstance(verdict, Refused)
    assert verdict.reason is Refusal.TOO_BLURRED
    assert verdict.quality is not None
    assert verdict.quality.brightness == pytest.approx(90)
    assert verdict.quality.sharpness == 0
    dark = judge(np.full((400, 400, 3), 10, np.uint8), [face(scale=2.0)])
    assert isinstance(dark, Refused)
    assert dark.reason is Refusal.TOO_DARK


def test_a_turned_face_is_judged_by_its_size_facing_the_camera() -> None:
    # 20 px between the eyes turned 50 degrees is 31 px facing the camera: turned, not small.
    turned = dataclasses.replace(GOOD, eye_distance=20.0, yaw_degrees=50.0)
    assert [p.reason for p in problems(turned)] == [Refusal.NOT_FRONTAL]
    small = dataclasses.replace(GOOD, eye_distance=20.0, yaw_degrees=10.0)
    assert [p.reason for p in problems(small)] == [Refusal.FACE_TOO_SMALL]
