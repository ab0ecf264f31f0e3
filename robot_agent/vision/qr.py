"""QR codes in camera frames: what OpenCV's Aruco-based detector reads, and retries where it reads nothing.

`QrReader.decode` takes any frame and returns the codes' texts; it never raises and never logs a text (a
ticket's text is a bearer token). Texts are opaque here: whatever a code holds, decoded as UTF-8.

Each pass runs only if the passes before it read nothing:

1. `cv2.QRCodeDetectorAruco` on the grayscale frame: exactly the bare detector (`bare_decode`).
2. (Within every pass.) A code located but not decoded is cropped, enlarged and sharpened (`_RETRIES`) and
   decoded again. Free on frames without a code.
3. The frame sharpened (an unsharp mask), against blur and JPEG's smoothing.
4. The frame's contrast stretched to the local minimum and maximum, then sharpened, against glare: a
   highlight lifts dark and light modules alike, and dividing by the local range undoes most of it where the
   sensor did not saturate.

Passes 3 and 4 use a second detector whose adaptive threshold asks for 12 grey levels of contrast instead of
7: on sharpened or stretched frames the default turns noise into contours, which doubles their cost on a
frame without a code and reads nothing more. They look at the frame scaled down to at most 480x360
(`RETRY_PIXELS`); a code they locate but cannot decode is cropped from the full-size frame for pass 2.
`retry` runs them alone, so that the scanner can ration them on frames without a code.

Measured on 1,800 frames of a phone screen photographed in a train (`tests/support/qr_images.py`, level
"train": 640x480, 20-40 cm, all degradations at once; seeds other than the tests'), 2 cores:

- grayscale or BGR into the detector: the same codes read, the same time (OpenCV converts to gray itself;
  passes 2-4 need the gray frame anyway).
- detector parameters: the QR ones (`minModuleSizeInPyramid`, `maxModuleSizeMismatch`, `maxPenalties`,
  `maxColorsMismatch`, the timing-pattern checks) read 0-2 of 98 frames that passes 1-3 missed. The Aruco
  adaptive-threshold ones move single frames either way; a threshold constant of 12 reads as much in passes
  3 and 4 as the default and halves their cost on frames without a code, hence the second detector. Pass 1
  keeps the defaults, so that it is the bare detector.
- read after pass 1: 62.3%; with pass 2: 93.0%; pass 3: 94.9%; pass 4: 95.7%; never a wrong text.
  Sharpening before pass 1 instead would read more there, but cost ~10 ms on every frame without a code
  and make pass 1 something other than the bare detector. CLAHE read less than the plain frame; a 2x
  enlargement of the whole frame read no more than the sharpened one at twice the cost.
- cost on a frame without a code (a cluttered carriage, sensor noise), best of 5 rounds: pass 1 2-4 ms,
  passes 1-3 ~12 ms, all four ~39 ms at 640x480 on the full frame (`bench/bench_qr.py` measures it too). A
  frame whose code pass 1 reads costs what the bare call costs.
- passes 3 and 4 on a scaled-down frame (seed 99, apart from the tests'; read share, cost without a code):
  640x480, 720 frames: full frame 94.3%, 37 ms; 480x360 94.6%, 21 ms; 400x300 93.5%, 15 ms; 320x240 92.9%,
  11 ms. 1280x720, 300 frames: full frame 96.7%, 105 ms; 480x360 97.3%, 22 ms. The camera's blur and the
  code's size in pixels both scale with the frame, so a 480x360 view of a larger frame is the same job.
- what is still missed is mostly glare: of 38 misses in 900 frames (passes 1-3), 30 were read when the same
  frame was drawn without its highlight. A crop around the code's true corners, enlarged and sharpened,
  reads only 11-17 of 98 misses: locating the code is not what fails.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

Gray = NDArray[np.uint8]

# A version-1 code is 21 modules wide: a smaller image cannot hold one at even a pixel per module.
MIN_SIDE: Final = 21
# 4K UHD. Anything larger is no camera frame of ours; decoding it would take seconds.
MAX_PIXELS: Final = 3840 * 2160
# Pass 2's crop: the located quadrangle's bounding box grown by this share of its size on each side, so the
# quiet zone and a corner located a module or two off stay inside.
CROP_MARGIN: Final = 0.25
# Pass 2's tries on a crop, in order: (enlargement, unsharp-mask sigma in enlarged pixels, amount).
_RETRIES: Final = ((2.0, 3.0, 1.5), (3.0, 4.5, 1.5), (1.0, 1.5, 1.5))
_SHARPEN: Final = (1.5, 1.5)  # passes 3 and 4: sigma in pixels, amount
_STRETCH_WINDOW: Final = 5  # pixels: about two modules of a far code, so every window sees dark and light
# Below this local range (grey levels) a window is flat (noise, a blank screen) and is not stretched into
# texture.
_STRETCH_FLOOR: Final = 24.0
_STRICT_THRESHOLD: Final = 12.0  # passes 3 and 4's detector; OpenCV's default is 7
# Passes 3 and 4 look at the frame scaled down to at most this many pixels (480x360). They read as many
# codes as on the full frame at 640x480 and 1280x720, for 58% and 21% of the time (module docstring).
RETRY_PIXELS: Final = 480 * 360


def bare_decode(detector: cv2.QRCodeDetectorAruco, image: NDArray[Any]) -> list[str]:
    """One call of the detector as it is: the texts it decoded, in its order. OpenCV's errors propagate.

    Pass 1 of `QrReader`, and the baseline it is measured against.
    """
    found, texts, _points, _straight = detector.detectAndDecodeBytesMulti(image)
    return [_text(raw) for raw in texts if raw] if found else []


class QrReader:
    """Reads the QR codes in camera frames. Its detectors are its own: use it from one thread at a time."""

    def __init__(self) -> None:
        self.detector = cv2.QRCodeDetectorAruco()
        self._strict = cv2.QRCodeDetectorAruco()
        params = self._strict.getArucoParameters()
        params.adaptiveThreshConstant = _STRICT_THRESHOLD
        self._strict.setArucoParameters(params)

    def decode(self, image: NDArray[Any], *, retries: bool = True) -> list[str]:
        """The texts of the QR codes in a BGR, BGRA or grayscale uint8 frame, each once.

        `retries=False` runs passes 1 and 2 only: what a frame costs when the scanner's retry budget is
        spent (`robot_agent.vision.scan.RetryBudget`). Never raises: a frame that cannot hold a code (wrong
        dtype or shape, empty, tiny, huge) gives [].
        """
        return self._decode(image, first=True, retries=retries)

    def retry(self, image: NDArray[Any]) -> list[str]:
        """Passes 3 and 4 alone: for a frame whose `decode(image, retries=False)` read nothing."""
        return self._decode(image, first=False, retries=True)

    def _decode(self, image: NDArray[Any], *, first: bool, retries: bool) -> list[str]:
        gray = as_gray(image)
        if gray is None:
            return []
        try:
            texts = self._read_view(self.detector, gray, gray) if first else []
            if not texts and retries:
                texts = self._read_retries(gray)
        except cv2.error as err:
            # Not expected for a checked uint8 frame; a frame must never stop the camera loop.
            logger.warning("QR detector failed shape=%s: %s", gray.shape, err)
            return []
        unique = list(dict.fromkeys(texts))
        if unique:
            logger.debug("QR codes read count=%d lengths=%s", len(unique), [len(t) for t in unique])
        return unique

    def _read_retries(self, gray: Gray) -> list[str]:
        """Passes 3 and 4, on the frame scaled down to at most `RETRY_PIXELS`; a code they locate but do
        not decode is retried from the full-size frame."""
        height, width = gray.shape
        scale = min(1.0, math.sqrt(RETRY_PIXELS / (height * width)))
        small = gray
        if scale < 1:
            small = np.asarray(
                cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8
            )
        read = self._read_view(self._strict, _sharpen(small, *_SHARPEN), gray, scale)
        if not read:
            read = self._read_view(self._strict, _sharpen(_stretch(small), *_SHARPEN), gray, scale)
        return read

    def _read_view(
        self, detector: cv2.QRCodeDetectorAruco, view: Gray, gray: Gray, scale: float = 1.0
    ) -> list[str]:
        """The codes `detector` decodes in `view` (`gray` scaled by `scale`), and those it only locates
        there decoded by `_retry` from `gray`."""
        texts, points = _detect(detector, view)
        read = [_text(raw) for raw in texts if raw]
        for raw, quad in zip(texts, points, strict=True):  # _detect pairs them
            if not raw:
                read.extend(self._retry(gray, quad / scale))
        return read

    def _retry(self, gray: Gray, quad: NDArray[np.float32]) -> list[str]:
        """Pass 2: a code located at `quad` but not decoded, from an enlarged and sharpened crop of `gray`."""
        crop = _crop(gray, quad)
        if crop is None:
            return []
        for detector in (self.detector, self._strict):
            for scale, sigma, amount in _RETRIES:
                enlarged = crop
                if scale != 1:
                    enlarged = np.asarray(
                        cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), np.uint8
                    )
                texts, _points = _detect(detector, _sharpen(enlarged, sigma, amount))
                read = [_text(raw) for raw in texts if raw]
                if read:
                    return read
        return []


def _detect(detector: cv2.QRCodeDetectorAruco, gray: Gray) -> tuple[list[bytes], list[NDArray[np.float32]]]:
    """Each code located in `gray`, paired with its corners; its bytes are empty if it was not decoded."""
    found, texts, points, _straight = detector.detectAndDecodeBytesMulti(gray)
    if not found or points is None or len(points) != len(texts):
        return [], []
    return list(texts), list(points)


def as_gray(image: object) -> Gray | None:
    """The frame as a contiguous 2-D uint8 array, or None for anything that cannot hold a code. A frame that
    already is one comes back as it is (no copy): a caller reading a frame twice converts it once."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        logger.debug("not a uint8 frame: %s", getattr(image, "dtype", type(image).__name__))
        return None
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        logger.debug("not a frame shape=%s", image.shape)
        return None
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE or height * width > MAX_PIXELS:
        logger.debug("frame too small or too large for a QR code shape=%s", image.shape)
        return None
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    conversion = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(image), conversion), np.uint8)


def _crop(gray: Gray, quad: NDArray[np.float32]) -> Gray | None:
    """The bounding box of `quad` grown by `CROP_MARGIN`, clipped to the frame; None if too little is left."""
    corners = np.asarray(quad, np.float64).reshape(-1, 2)
    if corners.size == 0 or not np.isfinite(corners).all():
        return None
    low, high = corners.min(axis=0), corners.max(axis=0)
    grow = CROP_MARGIN * float((high - low).max())
    height, width = gray.shape
    left, top = max(0, int(low[0] - grow)), max(0, int(low[1] - grow))
    right, bottom = min(width, int(high[0] + grow) + 1), min(height, int(high[1] + grow) + 1)
    if right - left < MIN_SIDE or bottom - top < MIN_SIDE:
        return None
    return gray[top:bottom, left:right]


def _sharpen(gray: Gray, sigma: float, amount: float) -> Gray:
    """An unsharp mask: `gray` plus `amount` times what a Gaussian blur of `sigma` takes away."""
    blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
    return np.asarray(cv2.addWeighted(gray, 1 + amount, blurred, -amount, 0), np.uint8)


def _stretch(gray: Gray) -> Gray:
    """Each pixel placed between its neighbourhood's (smoothed) minimum and maximum, as 0-255."""
    window = np.ones((_STRETCH_WINDOW, _STRETCH_WINDOW), np.uint8)
    sigma = _STRETCH_WINDOW / 2
    high = cv2.GaussianBlur(cv2.dilate(gray, window), (0, 0), sigma).astype(np.float32)
    low = cv2.GaussianBlur(cv2.erode(gray, window), (0, 0), sigma).astype(np.float32)
    stretched = (gray.astype(np.float32) - low) * (255 / np.maximum(high - low, _STRETCH_FLOOR))
    result: Gray = np.clip(stretched, 0, 255).astype(np.uint8)
    return result


def _text(raw: bytes) -> str:
    # OpenCV hands back kanji-mode codes as raw Shift JIS, on which its own str API raises.
    return raw.decode("utf-8", "replace")
