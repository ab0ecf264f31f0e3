"""Real QR codes as a camera sees them: clean frames, PNG test vectors, a phone screen shown in a train.

Codes are made by segno with the call the cloud uses for a ticket's `qr.png` (`cloud_sync.web.base_api`), so
the error correction level is the one passengers' phones show: M (segno's boost to Q never fits a
~285-character token without a larger version).

A degraded frame (`photograph`) is a deterministic function of its text, a seeded `numpy.random.Generator`
and a `Level`. The scene is physical: a phone whose screen shows the code, held `distance_cm` from a pinhole
camera with a `hfov_deg` lens, turned and tilted in 3-D, in front of a cluttered carriage. The phone is drawn
at `SUPERSAMPLE` times the frame's resolution and reduced with area averaging, so modules fall between pixels
as they do on a sensor; then come the optics (defocus, the phone's drift during the exposure), the sensor
(exposure, clipping, noise) and the encoder (JPEG), in the order light meets them.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import segno
from numpy.typing import NDArray

from cloud_sync.desks.wallet import QR_ERROR as WALLET_QR_ERROR
from models.tickets import LIVE_PREFIX

Image = NDArray[np.uint8]

ERROR_LEVEL: Final = "m"  # the cloud's qr.png of a ticket


def error_level(text: str) -> str:
    """The error correction `text`'s code is drawn with: the wallet's for a live code, qr.png's otherwise."""
    return WALLET_QR_ERROR if text.startswith(LIVE_PREFIX) else ERROR_LEVEL


QUIET_ZONE: Final = 4  # modules: ISO/IEC 18004's minimum, and what the cloud's qr.png draws
PNG_SCALE: Final = 6  # px per module of the cloud's qr.png
SUPERSAMPLE: Final = 3
BACKGROUND: Final = 228  # the light background of a clean frame
# A phone screen's white and black as a camera at normal exposure records them; reflections lift the black.
SCREEN_WHITE: Final = 240.0
SCREEN_BLACK: Final = 22.0


@functools.lru_cache(maxsize=512)
def qr_modules(text: str) -> NDArray[np.bool_]:
    """The code's modules without the quiet zone, True where dark; made as the cloud makes a ticket's code.

    Cached: segno spends ~50 ms choosing the mask of a version-10 code, and tests photograph a code often.
    """
    modules = np.array(segno.make_qr(text, error=error_level(text)).matrix, dtype=bool)
    modules.flags.writeable = False
    return modules


def render_qr(text: str, *, size: tuple[int, int] = (640, 480), px_per_module: float | None = None) -> Image:
    """A BGR frame of `size` (width, height): the code on white with its quiet zone, centred on light grey.

    Without `px_per_module` the code spans about half the frame's height in whole pixels per module (4 for a
    ticket at 640x480, 6 at 1280x720): a phone screen held up to the camera. Raises ValueError if the code and
    its quiet zone do not fit.
    """
    width, height = size
    modules = qr_modules(text)
    count = modules.shape[0] + 2 * QUIET_ZONE
    if px_per_module is None:
        px_per_module = max(1, int(0.5 * height / modules.shape[0]))
    side = round(count * px_per_module)
    if side > min(width, height):
        raise ValueError(
            f"a {count}-module code at {px_per_module:g} px per module does not fit {width}x{height}"
        )
    padded = np.pad(~modules, QUIET_ZONE, constant_values=True).astype(np.uint8) * 255
    if float(px_per_module).is_integer():
        code = cv2.resize(padded, (side, side), interpolation=cv2.INTER_NEAREST)
    else:
        # Drawn at a whole multiple, then area-averaged: fractional modules blend as a sensor blends them.
        fine = count * 4 * math.ceil(px_per_module)
        code = cv2.resize(
            cv2.resize(padded, (fine, fine), interpolation=cv2.INTER_NEAREST),
            (side, side),
            interpolation=cv2.INTER_AREA,
        )
    frame = np.full((height, width), BACKGROUND, np.uint8)
    top, left = (height - side) // 2, (width - side) // 2
    frame[top : top + side, left : left + side] = code
    return np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), np.uint8)


def save_png(text: str, path: Path) -> None:
    """The code as a PNG file: the very image the cloud serves as a ticket's `qr.png` (6 px per module)."""
    segno.make_qr(text, error=error_level(text)).save(
        str(path), kind="png", scale=PNG_SCALE, border=QUIET_ZONE
    )


class Kind(enum.StrEnum):
    """One way a photographed phone screen differs from a clean code."""

    PERSPECTIVE = "perspective"  # the phone tilted against the camera's axis
    BLUR = "blur"  # a fixed-focus lens's defocus and the phone's drift during the exposure
    GLARE = "glare"  # a ceiling light reflected by the screen's glass
    EXPOSURE = "exposure"  # auto-exposure and gamma set by the carriage, not by the screen
    NOISE = "noise"  # sensor noise under indoor light
    JPEG = "jpeg"  # the camera's or the stream's compression


@dataclass(frozen=True)
class Conditions:
    """The ranges every degraded frame draws from, uniformly, in the units they are known in."""

    distance_cm: tuple[float, float]  # screen to lens
    code_cm: tuple[float, float]  # the code's side on the screen, quiet zone excluded
    hfov_deg: float  # the camera's horizontal field of view
    rotation_deg: float  # the phone turned in its plane, either way
    tilt_deg: float  # the screen turned up to this far from facing the camera, about any axis in its plane
    defocus_sigma_px: tuple[float, float]  # Gaussian sigma, in pixels of a 640-wide frame
    drift_cm_s: tuple[float, float]  # the phone's speed while held still (tremor, the carriage's sway)
    exposure_s: tuple[float, float]
    glare_radius: tuple[float, float]  # the highlight's semi-axes, as shares of the code's side
    # Light it adds at its centre, in 8-bit units of the screen's 240 white: light modules clip at once, dark
    # ones past ~230. Glass reflects ~4% of a 2,000-10,000 cd/m2 lamp; the screen gives 200-500 cd/m2.
    glare_peak: tuple[float, float]
    gain: tuple[float, float]
    offset: tuple[float, float]
    gamma: tuple[float, float]
    noise_sigma: tuple[float, float]  # per channel, 8-bit units
    jpeg_quality: tuple[int, int]

    def focal_px(self, width: int) -> float:
        return width / 2 / math.tan(math.radians(self.hfov_deg) / 2)


# A phone screen photographed in a moving train by the robot's 640x480 camera.
TRAIN: Final = Conditions(
    distance_cm=(20.0, 40.0),
    # Ticket apps draw the code across most of a 6.5-7 cm wide screen.
    code_cm=(4.5, 5.5),
    # The narrowest lens that still frames the largest code at 20 cm (turned 20 degrees, quiet zone included,
    # in 480 rows): any wider lens only makes the far codes smaller (2.5-5.8 px per module here). With a
    # common 50 or 60 degree webcam lens QrReader reads 51% or 25% of these frames (76% or 43% at 20-30 cm).
    hfov_deg=30.0,
    rotation_deg=20.0,
    # 35 degrees moves the code's corners by up to 13-15% of its side (foreshortening plus perspective).
    tilt_deg=35.0,
    defocus_sigma_px=(0.3, 1.0),
    # Physiological tremor alone moves a held object at 1-3 cm/s at its peaks; the train adds sway.
    drift_cm_s=(0.0, 2.0),
    # Auto-exposure under a carriage's 200-500 lux.
    exposure_s=(1 / 60, 1 / 30),
    glare_radius=(0.08, 0.2),
    glare_peak=(80.0, 300.0),
    gain=(0.55, 1.15),
    offset=(-30.0, 30.0),
    gamma=(0.7, 1.4),
    noise_sigma=(2.0, 8.0),
    jpeg_quality=(30, 70),
)


@dataclass(frozen=True)
class Level:
    """A named set of degradations applied together under one set of conditions.

    Every level places the phone the same way (distance, in-plane rotation, position in the frame); its kinds
    add the rest.
    """

    name: str
    kinds: frozenset[Kind]
    conditions: Conditions = TRAIN


# "held": only where the phone is; one level per kind on top of that; "train": everything at once.
LEVELS: Final = {
    level.name: level
    for level in (
        Level("held", frozenset()),
        *(Level(kind.value, frozenset({kind})) for kind in Kind),
        Level("train", frozenset(Kind)),
    )
}


@dataclass(frozen=True)
class Shot:
    """What one degraded frame drew: enough to say what a frame that failed looked like."""

    distance_cm: float
    px_per_module: float
    rotation_deg: float
    tilt_deg: float = 0.0
    defocus_sigma_px: float = 0.0
    streak_px: float = 0.0
    glare_peak: float = 0.0
    gain: float = 1.0
    noise_sigma: float = 0.0
    jpeg_quality: int = 100

    def __str__(self) -> str:
        return (
            f"{self.distance_cm:.0f} cm {self.px_per_module:.1f} px/module turn {self.rotation_deg:+.0f} "
            f"tilt {self.tilt_deg:.0f} defocus {self.defocus_sigma_px:.1f} streak {self.streak_px:.1f} px "
            f"glare {self.glare_peak:.0f} gain {self.gain:.2f} noise {self.noise_sigma:.1f} "
            f"jpeg {self.jpeg_quality}"
        )


@dataclass(frozen=True)
class Photo:
    """A degraded frame (BGR) and what was drawn to make it."""

    image: Image
    shot: Shot


def photograph(
    text: str, rng: np.random.Generator, level: Level, size: tuple[int, int] = (640, 480)
) -> Photo:
    """A BGR frame of `size`: `text`'s code on a phone screen held up to the camera, degraded per `level`."""
    c, kinds = level.conditions, level.kinds
    width, height = size
    modules = qr_modules(text)
    n = modules.shape[0]
    distance = rng.uniform(*c.distance_cm)
    code_cm = rng.uniform(*c.code_cm)
    module_cm = code_cm / n
    phone, corners = _phone(modules, module_cm, rng)
    shot = Shot(
        distance, c.focal_px(width) * module_cm / distance, rng.uniform(-c.rotation_deg, c.rotation_deg)
    )
    if Kind.GLARE in kinds:
        peak = rng.uniform(*c.glare_peak)
        _add_glare(phone, corners, rng.uniform(0, 1, 2), rng.uniform(*c.glare_radius, 2) * n, peak, rng)
        shot = replace(shot, glare_peak=peak)

    # The code's corners in the frame: the square turned in its plane and tilted about a random axis in it,
    # seen by a pinhole camera on its axis, then moved across the frame (a shift, not a new viewpoint).
    if Kind.PERSPECTIVE in kinds:
        shot = replace(shot, tilt_deg=rng.uniform(0, c.tilt_deg))
    unit = _pose(
        math.radians(shot.rotation_deg),
        rng.uniform(0, math.pi),
        math.radians(shot.tilt_deg),
        code_cm / distance,
    )
    # A passenger holding the code too close for the frame (quiet zone included) moves it back until it fits.
    reach = np.abs(unit).max(axis=0) * (n + 2 * QUIET_ZONE) / n
    shot = replace(shot, px_per_module=min(shot.px_per_module, float(np.min(np.array(size) / 2 / reach)) / n))
    ppm = shot.px_per_module
    margin = np.minimum(reach * n * ppm, [width / 2, height / 2])
    centre = rng.uniform(margin, [width - margin[0], height - margin[1]])
    homography = cv2.getPerspectiveTransform(
        corners, ((unit * n * ppm + centre) * SUPERSAMPLE).astype(np.float32)
    )
    fine = (width * SUPERSAMPLE, height * SUPERSAMPLE)
    warped = cv2.resize(cv2.warpPerspective(phone, homography, fine), size, interpolation=cv2.INTER_AREA)
    # The phone's outline needs no supersampling: it is not what anyone reads.
    to_frame = np.diag([1 / SUPERSAMPLE, 1 / SUPERSAMPLE, 1]) @ homography
    inside = cv2.warpPerspective(np.ones_like(phone), to_frame, size)
    light = _carriage(rng, size) * (1 - inside) + warped

    if Kind.BLUR in kinds:
        sigma = rng.uniform(*c.defocus_sigma_px) * width / 640
        # The drift during the exposure, in the code's own scale: a module is module_cm wide.
        streak = ppm / module_cm * rng.uniform(*c.drift_cm_s) * rng.uniform(*c.exposure_s)
        light = np.asarray(cv2.GaussianBlur(light, (0, 0), sigma), np.float32)
        light = np.asarray(
            cv2.filter2D(light, -1, _streak_kernel(streak, rng.uniform(0, math.pi))), np.float32
        )
        shot = replace(shot, defocus_sigma_px=sigma, streak_px=streak)
    # The sensor: the exposure curve, a colour cast, clipping, then noise in each channel. The curve is a
    # power law, so applying it before the cast's per-channel gains only rescales them, and one channel is
    # cheaper than three.
    cast = rng.uniform(0.9, 1.05, 3).astype(np.float32)
    if Kind.EXPOSURE in kinds:
        gain, gamma = rng.uniform(*c.gain), rng.uniform(*c.gamma)
        curve = (np.clip(light, 0, 255) / np.float32(255.0)) ** np.float32(gamma)
        light = curve * np.float32(255.0 * gain) + np.float32(rng.uniform(*c.offset))
        shot = replace(shot, gain=gain)
    frame = light[:, :, None] * cast
    frame = np.clip(frame, 0, 255, out=frame)
    if Kind.NOISE in kinds:
        sigma = rng.uniform(*c.noise_sigma)
        frame = frame + rng.standard_normal(frame.shape, np.float32) * np.float32(sigma)
        shot = replace(shot, noise_sigma=sigma)
    image: Image = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    if Kind.JPEG in kinds:
        quality = int(rng.integers(c.jpeg_quality[0], c.jpeg_quality[1] + 1))
        encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR), np.uint8)
        shot = replace(shot, jpeg_quality=quality)
    return Photo(image, shot)


def empty_frame(rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> Image:
    """A BGR frame of the carriage with no phone in it, sensor noise included: the camera between codes."""
    width, height = size
    light = _carriage(rng, size)[:, :, None] * rng.uniform(0.9, 1.05, 3).astype(np.float32)
    noisy = light + rng.standard_normal((height, width, 3), np.float32) * np.float32(
        rng.uniform(*TRAIN.noise_sigma)
    )
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


_SHARP = 8  # px per module of the phone before it is warped


def _phone(
    modules: NDArray[np.bool_], module_cm: float, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The phone face-on at `_SHARP` px per module: dark body, white screen, the code on it; and the code's
    corners (clockwise from top left) in that image."""
    n = modules.shape[0]
    px_per_cm = _SHARP / module_cm
    screen_w = max(rng.uniform(6.3, 7.2), module_cm * (n + 2 * QUIET_ZONE + 1))
    screen_h = screen_w * rng.uniform(2.0, 2.2)
    bezel = rng.uniform(0.2, 0.5)
    shape = (round((screen_h + 2 * bezel) * px_per_cm), round((screen_w + 2 * bezel) * px_per_cm))
    phone = np.full(shape, rng.uniform(10, 45), np.float32)
    left, top = round(bezel * px_per_cm), round(bezel * px_per_cm)
    phone[top : top + round(screen_h * px_per_cm), left : left + round(screen_w * px_per_cm)] = SCREEN_WHITE
    side = n * _SHARP
    x = (shape[1] - side) // 2
    y = top + round((screen_h * px_per_cm - side) * rng.uniform(0.3, 0.55))
    phone[y : y + side, x : x + side] = np.where(
        np.kron(modules, np.ones((_SHARP, _SHARP), bool)), SCREEN_BLACK, SCREEN_WHITE
    )
    corners = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], np.float32)
    return phone, corners


def _add_glare(
    phone: NDArray[np.float32],
    corners: NDArray[np.float32],
    where: NDArray[np.float64],
    radii_modules: NDArray[np.float64],
    peak: float,
    rng: np.random.Generator,
) -> None:
    """A ceiling light's reflection: an elliptical highlight centred somewhere on the code, added in place."""
    (x0, y0), (x1, y1) = corners[0], corners[2]
    cx, cy = x0 + where[0] * (x1 - x0), y0 + where[1] * (y1 - y0)
    ax, ay = (radii_modules * _SHARP).tolist()
    reach = 2 * max(ax, ay)
    top, bottom = max(0, int(cy - reach)), min(phone.shape[0], int(cy + reach) + 1)
    left, right = max(0, int(cx - reach)), min(phone.shape[1], int(cx + reach) + 1)
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    dx, dy = xx - cx, yy - cy
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / ax
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / ay
    phone[top:bottom, left:right] += peak * np.exp(-2.0 * (u * u + v * v))


def _pose(turn: float, axis: float, tilt: float, side_over_distance: float) -> NDArray[np.float64]:
    """The code's corners (clockwise from top left) projected, in units of its side as seen face-on.

    The unit square is turned by `turn` in its plane, then by `tilt` about the in-plane direction `axis`, with
    its centre on the camera's axis `1 / side_over_distance` sides away.
    """
    square = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]])
    cos_t, sin_t = math.cos(turn), math.sin(turn)
    square = square @ np.array([[cos_t, sin_t, 0], [-sin_t, cos_t, 0], [0, 0, 1]])
    rotation = cv2.Rodrigues(np.array([math.cos(axis), math.sin(axis), 0.0]) * tilt)[0]
    points = square @ rotation.T
    depth = 1 + points[:, 2] * side_over_distance
    projected: NDArray[np.float64] = points[:, :2] / depth[:, None]
    return projected


def _carriage(rng: np.random.Generator, size: tuple[int, int]) -> NDArray[np.float32]:
    """A light, cluttered carriage behind the phone: a lit gradient with soft-edged panels, seats, windows."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    gx, gy = rng.uniform(-60, 60, 2)
    scene = (rng.uniform(150, 215) + gx * xx / width + gy * yy / height).astype(np.float32)
    for _ in range(int(rng.integers(3, 9))):
        w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.1, 0.5) * height
        x, y = rng.uniform(-w / 2, width - w / 2), rng.uniform(-h / 2, height - h / 2)
        cv2.rectangle(scene, (int(x), int(y)), (int(x + w), int(y + h)), float(rng.uniform(60, 250)), -1)
    blurred: NDArray[np.float32] = cv2.GaussianBlur(scene, (0, 0), 2.0)
    return blurred


def _streak_kernel(length: float, angle: float) -> NDArray[np.float32]:
    """A normalised straight streak `length` pixels long (under 1 pixel: no motion)."""
    half = max(length, 1.0) / 2
    side = 2 * math.ceil(half) + 1
    kernel = np.zeros((side, side), np.float32)
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    centre = side // 2
    start = (round((centre - dx) * 16), round((centre - dy) * 16))
    end = (round((centre + dx) * 16), round((centre + dy) * 16))
    cv2.line(kernel, start, end, 1.0, 1, cv2.LINE_AA, 4)
    normalised: NDArray[np.float32] = kernel / kernel.sum()
    return normalised
