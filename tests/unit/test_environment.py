"""The locked environment holds what the design needs, and exactly one OpenCV distribution."""

from __future__ import annotations

from importlib import metadata

import pytest

OPENCV_DISTRIBUTIONS = {
    "opencv-python",
    "opencv-contrib-python",
    "opencv-python-headless",
    "opencv-contrib-python-headless",
}


def test_exactly_one_opencv_distribution_is_installed() -> None:
    # They all install the same cv2/ folder over each other (shared/notes/vision-facts.md).
    installed = {d.metadata["Name"].lower() for d in metadata.distributions()} & OPENCV_DISTRIBUTIONS
    assert installed == {"opencv-contrib-python"}


def test_opencv_imports_with_its_contrib_modules() -> None:
    import cv2

    assert cv2.__version__.startswith("5.")
    assert hasattr(cv2, "QRCodeDetectorAruco")
    assert hasattr(cv2, "FaceDetectorYN")


@pytest.mark.parametrize(
    "module",
    [
        "mediapipe",
        "onnxruntime",
        "onnx",
        "pip",
        "hnswlib",
        "serial",
        "paho.mqtt.client",
        "textual",
        "base45",
        "cbor2",
    ],
)
def test_runtime_dependency_imports(module: str) -> None:
    __import__(module)


def test_paho_is_2x() -> None:
    assert metadata.version("paho-mqtt").startswith("2.")
