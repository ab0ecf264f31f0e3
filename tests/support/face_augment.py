"""Augmentations of real face photos, for the pipeline's tests and the bench: light, rotation, scale, crop,
blur, JPEG and noise, each a deterministic function of the image and its parameters (noise takes a seed).

`STANDARD` names the set the tests and the evaluation run on every real photo; it covers the issue's range
(light, rotation ±10°, scale, blur, JPEG 40-90, noise). Photos are few (face_recognition's Obama x3 and
Biden, insightface's t1.jpg), so these are variations of four people, not new identities.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]


def exposure(image: Image, factor: float) -> Image:
    """Every intensity times `factor` (under 1 darker, over 1 brighter and clipping): exposure."""
    return np.asarray(np.clip(image.astype(np.float32) * factor, 0, 255).round(), np.uint8)


def gamma(image: Image, value: float) -> Image:
    """Intensities through a gamma curve (over 1 darkens the mid-tones, under 1 lifts them)."""
    table = np.clip(((np.arange(256) / 255.0) ** value) * 255.0, 0, 255).round().astype(np.uint8)
    return np.asarray(cv2.LUT(image, table), np.uint8)


def rotate(image: Image, degrees: float) -> Image:
    """The image turned `degrees` anticlockwise about its centre, same size, edges repeated into corners."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return np.asarray(
        cv2.warpAffine(
            image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ),
        np.uint8,
    )


def scale(image: Image, factor: float) -> Image:
    """The image resized by `factor` (area averaging down, bilinear up)."""
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation), np.uint8)


def crop(image: Image, left: float, top: float, right: float, bottom: float) -> Image:
    """The part of the image between fractions of its width (left, right) and height (top, bottom)."""
    height, width = image.shape[:2]
    return image[
        round(top * height) : round(bottom * height), round(left * width) : round(right * width)
    ].copy()


def blur(image: Image, sigma: float) -> Image:
    """A Gaussian blur of `sigma` pixels (defocus, motion smear)."""
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.uint8)


def jpeg(image: Image, quality: int) -> Image:
    """The image after a round trip through JPEG at `quality` (0-100)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), np.uint8)


def noise(image: Image, sigma: float, seed: int = 0) -> Image:
    """Gaussian sensor noise of `sigma` intensity levels, from a seeded generator."""
    rng = np.random.default_rng(seed)
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.asarray(np.clip(noisy, 0, 255).round(), np.uint8)


def encode(image: Image, ext: str = ".png") -> bytes:
    """The image as file bytes (PNG by default: lossless)."""
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


STANDARD: Mapping[str, Callable[[Image], Image]] = {
    "dark x0.5": lambda im: exposure(im, 0.5),
    "bright x1.4": lambda im: exposure(im, 1.4),
    "gamma 1.8": lambda im: gamma(im, 1.8),
    "rotate -10": lambda im: rotate(im, -10),
    "rotate +10": lambda im: rotate(im, 10),
    "scale 0.5": lambda im: scale(im, 0.5),
    "scale 1.5": lambda im: scale(im, 1.5),
    "crop centre": lambda im: crop(im, 0.1, 0.05, 0.9, 0.95),
    "blur 2": lambda im: blur(im, 2.0),
    "jpeg 40": lambda im: jpeg(im, 40),
    "jpeg 90": lambda im: jpeg(im, 90),
    "noise 8": lambda im: noise(im, 8.0),
}
