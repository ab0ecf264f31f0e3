"""Decoding photos for the pipeline: any image OpenCV reads becomes 8-bit BGR; anything else is an
ImageError that says it is not an image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.faces.errors import ImageError
from models.faces.image import check_bgr, decode_image


def encoded(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp"])
def test_colour_images_decode_to_bgr(ext: str) -> None:
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :, 2] = 200  # red
    decoded = decode_image(encoded(image, ext))
    assert decoded.shape == (20, 30, 3)
    assert decoded.dtype == np.uint8
    assert abs(int(decoded[10, 15, 2]) - 200) < 8
    assert decoded[10, 15, 0] < 8


def test_grey_and_alpha_images_become_bgr() -> None:
    assert decode_image(encoded(np.full((8, 8), 77, np.uint8), ".png")).shape == (8, 8, 3)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 1] = 150
    rgba[..., 3] = 255
    decoded = decode_image(encoded(rgba, ".png"))
    assert decoded.shape == (8, 8, 3)
    assert decoded[0, 0].tolist() == [0, 150, 0]


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a but not really", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"%PDF-1.7\n" + b"x" * 500],
    ids=["empty", "text", "truncated png", "pdf"],
)
def test_bytes_that_are_no_image_are_an_image_error(data: bytes) -> None:
    with pytest.raises(ImageError, match="not an image"):
        decode_image(data)


def test_a_jpeg_cut_short_in_its_header_is_not_an_image() -> None:
    whole = encoded(np.full((64, 64, 3), 128, np.uint8), ".jpg")
    with pytest.raises(ImageError, match="not an image"):
        decode_image(whole[:20])


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((4, 4, 3), np.float32),
        np.zeros((0, 4, 3), np.uint8),
    ],
    ids=["grey", "bgra", "float", "empty"],
)
def test_arrays_that_are_not_bgr_images_are_refused(array: np.ndarray) -> None:
    with pytest.raises(ImageError, match="expected an 8-bit BGR image"):
        check_bgr(array)
