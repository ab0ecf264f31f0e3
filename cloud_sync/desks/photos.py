"""What the Face Server lets its decoder see: JPEG, PNG and WebP photos of at most `MAX_PIXELS`, judged from
their headers before a pixel is decoded.

A decoder allocates what the header announces: a 1 MB PNG of one colour can announce 20,000 x 20,000 pixels
and take 1.2 GB to decode, so the size is read here first. OpenCV reads many more formats (TIFF, EXR, HDR,
PXM, JPEG 2000...); enrolment photos need none of them, and each is one more parser exposed to uploads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

# 50 megapixels: a 48-megapixel phone's full-resolution photo passes; decoded, 150 MB of BGR.
MAX_PIXELS = 50_000_000

PhotoFormat = Literal["jpeg", "png", "webp"]

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT, JPG, DAC)
_JPEG_NO_LENGTH = frozenset(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI, TEM: no length field


class PhotoError(ValueError):
    """Bytes that are not a photo the Face Server reads; the message says why."""


@dataclass(frozen=True, slots=True)
class PhotoHeader:
    format: PhotoFormat
    width: int
    height: int


def read_header(data: bytes) -> PhotoHeader:
    """The format and size `data`'s header announces; PhotoError if it is not a JPEG, PNG or WebP header."""
    if data.startswith(b"\xff\xd8\xff"):
        width, height = _jpeg_size(data)
        return PhotoHeader("jpeg", width, height)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise PhotoError("a PNG without its header chunk")
        width, height = struct.unpack(">II", data[16:24])
        return PhotoHeader("png", width, height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        width, height = _webp_size(data)
        return PhotoHeader("webp", width, height)
    raise PhotoError("not a JPEG, PNG or WebP photo")


def check_photo(data: bytes, max_pixels: int = MAX_PIXELS) -> PhotoHeader:
    """`data`'s header, if it announces a photo of 1 x 1 to `max_pixels` pixels; PhotoError if not."""
    header = read_header(data)
    if header.width < 1 or header.height < 1:
        raise PhotoError(f"a {header.format.upper()} of {header.width}x{header.height} pixels")
    if header.width * header.height > max_pixels:
        raise PhotoError(
            f"{header.width}x{header.height} pixels, over the limit of {max_pixels / 1e6:g} megapixels"
        )
    return header


def _jpeg_size(data: bytes) -> tuple[int, int]:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise PhotoError("a JPEG whose markers are broken")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _JPEG_SOF:
            if at + 9 > len(data) or length < 7:
                break
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        if marker == 0xDA or length < 2:  # image data before any frame header, or a broken length
            break
        at += 2 + length
    raise PhotoError("a JPEG without a frame header")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise PhotoError("a WebP without a VP8, VP8L or VP8X header")
