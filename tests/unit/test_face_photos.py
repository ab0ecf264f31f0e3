"""The Face Server reads a photo's size from its header before decoding it: JPEG, PNG and WebP as OpenCV
writes them, and set-up's real photos, give the size OpenCV decodes; anything else, or too many pixels, is
refused."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.desks.photos import MAX_PIXELS, PhotoError, PhotoHeader, check_photo, read_header
from tests.support.face_files import face_photo


def encoded(ext: str, width: int, height: int, channels: int = 3, *params: int) -> bytes:
    image = np.random.default_rng(7).integers(0, 256, (height, width, channels), np.uint8)
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (encoded(".jpg", 37, 21), PhotoHeader("jpeg", 37, 21)),
        (encoded(".jpg", 640, 480, 3, cv2.IMWRITE_JPEG_PROGRESSIVE, 1), PhotoHeader("jpeg", 640, 480)),
        (encoded(".png", 5, 3), PhotoHeader("png", 5, 3)),
        (encoded(".png", 9, 4, 4), PhotoHeader("png", 9, 4)),
        (encoded(".webp", 33, 17, 3, cv2.IMWRITE_WEBP_QUALITY, 80), PhotoHeader("webp", 33, 17)),  # VP8
        (encoded(".webp", 33, 17, 3, cv2.IMWRITE_WEBP_QUALITY, 101), PhotoHeader("webp", 33, 17)),  # VP8L
        (encoded(".webp", 31, 15, 4, cv2.IMWRITE_WEBP_QUALITY, 80), PhotoHeader("webp", 31, 15)),
    ],
    ids=["jpeg", "progressive jpeg", "png", "png with alpha", "webp lossy", "webp lossless", "webp alpha"],
)
def test_the_size_is_read_from_the_header(data: bytes, expected: PhotoHeader) -> None:
    assert read_header(data) == expected
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert (decoded.shape[1], decoded.shape[0]) == (expected.width, expected.height)


@pytest.mark.parametrize(
    "name", ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "t1.jpg", "32bit.png"]
)
def test_set_ups_photos_read_as_opencv_decodes_them(name: str) -> None:
    data = face_photo(name)
    header = check_photo(data)
    # EXIF orientation may turn a photo on decoding; these have none.
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert (header.width, header.height) == (decoded.shape[1], decoded.shape[0])


def png_header(width: int, height: int) -> bytes:
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_a_photo_over_the_pixel_limit_is_refused_before_decoding() -> None:
    assert check_photo(png_header(10_000, 5_000)) == PhotoHeader("png", 10_000, 5_000)
    with pytest.raises(PhotoError, match=r"^20000x20000 pixels, over the limit of 50 megapixels$"):
        check_photo(png_header(20_000, 20_000))
    with pytest.raises(PhotoError, match="over the limit"):
        check_photo(png_header(MAX_PIXELS + 1, 1))
    with pytest.raises(PhotoError, match=r"a PNG of 0x7 pixels"):
        check_photo(png_header(0, 7))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not a JPEG, PNG or WebP photo"),
        (b"GIF89a" + bytes(20), "not a JPEG, PNG or WebP photo"),
        (encoded(".bmp", 4, 4), "not a JPEG, PNG or WebP photo"),
        (encoded(".tiff", 4, 4), "not a JPEG, PNG or WebP photo"),
        (face_photo("obama.jpg")[:200], "a JPEG without a frame header"),
        (b"\xff\xd8\xff\xe0\x00\x04ab then no marker", "a JPEG whose markers are broken"),
        (b"\x89PNG\r\n\x1a\n" + bytes(8), "a PNG without its header chunk"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "a WebP without a VP8, VP8L or VP8X header"),
    ],
    ids=["empty", "gif", "bmp", "tiff", "cut jpeg", "broken jpeg", "cut png", "cut webp"],
)
def test_anything_else_is_refused_with_its_reason(data: bytes, why: str) -> None:
    with pytest.raises(PhotoError) as refused:
        read_header(data)
    assert str(refused.value) == why


@given(st.binary(max_size=300))
def test_any_bytes_give_a_header_or_a_photo_error(data: bytes) -> None:
    for prefix in (b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP"):
        try:
            header = read_header(prefix + data)
        except PhotoError:
            continue
        assert header.width >= 0
        assert header.height >= 0
