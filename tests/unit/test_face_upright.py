"""`upright` on a made-up detector that finds coloured dots and, like the real models, reads a tilted face
as only half as tilted as it is: turning the copy by each reading converges on the true landmarks, mapped
back into the image's pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.faces.detect import (
    UPRIGHT_DONE_ROLL,
    UPRIGHT_MIN_ROLL,
    Box,
    DetectedFace,
    Landmark,
    Point,
    upright,
)
from models.faces.image import BgrImage

DOTS = {Landmark.RIGHT_EYE: (0, 0, 255), Landmark.LEFT_EYE: (0, 255, 0), Landmark.NOSE_TIP: (255, 0, 0)}


class HalfTiltDetector:
    """Finds the three dots; reports them turned halfway back towards level about their centre."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: BgrImage) -> list[DetectedFace]:
        self.calls += 1
        points: dict[Landmark, Point] = {}
        for name, colour in DOTS.items():
            ys, xs = np.nonzero(np.all(np.abs(image.astype(int) - colour) < 60, axis=2))
            if len(xs) == 0:
                return []
            points[name] = (float(xs.mean()), float(ys.mean()))
        face = DetectedFace(Box(0, 0, 1, 1), 0.9, points)
        centre = np.mean(list(points.values()), axis=0)
        half = math.radians(-face.roll / 2)
        turn = np.array([[math.cos(half), -math.sin(half)], [math.sin(half), math.cos(half)]])
        leaned = {name: tuple(turn @ (np.array(p) - centre) + centre) for name, p in points.items()}
        cx, cy = centre
        return [
            DetectedFace(
                Box(cx - 64, cy - 64, 128, 128),
                0.9,
                {k: (float(x), float(y)) for k, (x, y) in leaned.items()},
            )
        ]

    def close(self) -> None:
        pass


def scene(roll_degrees: float, scale: float = 1.0) -> tuple[BgrImage, dict[Landmark, Point]]:
    """A grey image with the three dots of a face tilted `roll_degrees` (clockwise in the image)."""
    image = np.full((900, 1000, 3), 128, np.uint8)
    angle = math.radians(roll_degrees)
    centre = np.array([480.0, 430.0])
    truth: dict[Landmark, Point] = {}
    for name, offset in {
        Landmark.RIGHT_EYE: (-30.0, -20.0),
        Landmark.LEFT_EYE: (30.0, -20.0),
        Landmark.NOSE_TIP: (0.0, 15.0),
    }.items():
        dx, dy = np.array(offset) * scale
        x = centre[0] + dx * math.cos(angle) - dy * math.sin(angle)
        y = centre[1] + dx * math.sin(angle) + dy * math.cos(angle)
        truth[name] = (x, y)
        r = round(4 * scale)
        image[round(y) - r : round(y) + r + 1, round(x) - r : round(x) + r + 1] = DOTS[name]
    return image, truth


@pytest.mark.parametrize("roll", [-50, -20, 18, 40])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_upright_converges_on_the_true_landmarks(roll: float, scale: float) -> None:
    image, truth = scene(roll, scale)
    detector = HalfTiltDetector()
    first = detector.detect(image)[0]
    assert abs(first.roll - roll / 2) < 1
    found = upright(detector, image, first, passes=10)
    # It stops when a copy reads under UPRIGHT_DONE_ROLL, which this detector reads at half the truth.
    left = 2 * UPRIGHT_DONE_ROLL
    assert found.roll == pytest.approx(roll, abs=left)
    reach = math.hypot(30, 20) * scale  # the dots' farthest distance from the face's centre
    for name, (x, y) in truth.items():
        gap = math.hypot(found.landmarks[name][0] - x, found.landmarks[name][1] - y)
        assert gap < reach * math.radians(left) + 1, name
    assert found.box == first.box
    assert detector.calls <= 1 + 10


def test_a_level_face_is_left_alone() -> None:
    image, _ = scene(UPRIGHT_MIN_ROLL * 2 * 0.9)  # read as 0.9 of the minimum
    detector = HalfTiltDetector()
    first = detector.detect(image)[0]
    assert upright(detector, image, first) is first
    assert detector.calls == 1


def test_a_copy_without_a_face_gives_the_face_back() -> None:
    class Blind(HalfTiltDetector):
        def detect(self, image: BgrImage) -> list[DetectedFace]:
            return []

    image, _ = scene(40)
    first = HalfTiltDetector().detect(image)[0]
    assert upright(Blind(), image, first) is first
