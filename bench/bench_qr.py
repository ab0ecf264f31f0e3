"""QR frames read per second by QrReader vs the bare OpenCV detector it starts with, on the same frames.

Frames: a phone screen photographed in a train (`tests/support/qr_images.py`, level "train"), one ticket code
each, kept only if the bare `cv2.QRCodeDetectorAruco` call reads it exactly, so that both sides do the same
job and the ratio is what the reader adds to a frame it reads on the first pass (a grayscale conversion, its
checks, de-duplication). Rounds alternate reader and bare call over the same chunk of frames so that this
shared machine's load falls on both alike; each side's rate is its best round, and every result is checked
against the frame's token.

The last two figures are the other side of the bargain: frames without a code (`empty_frame`: the carriage
with sensor noise), where the reader tries all its passes before it gives up and the bare call tries one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from bench.report import Figure
from models.tickets import encode_ticket
from robot_agent.vision.qr import QrReader, bare_decode
from tests.support.qr_images import LEVELS, empty_frame, photograph
from tests.unit.ticket_samples import KEY, claims

Frame = NDArray[np.uint8]

ROUNDS = 10
# Multiples of ROUNDS: every frame is read in one round by each side.
FRAMES = {(640, 480): 120, (1280, 720): 60}
EMPTY_FRAMES = 60
TARGET = 0.9
TOKENS = 40  # drawn once each (segno takes ~50 ms a code), shown in several frames


def _tokens() -> list[str]:
    return [encode_ticket(claims(code=f"B{n:05d}", place_number=n % 60 + 1), KEY) for n in range(TOKENS)]


def _readable_frames(reader: QrReader, size: tuple[int, int], count: int) -> list[tuple[Frame, str]]:
    """`count` degraded frames of `size` that the bare detector reads exactly, each with its token."""
    tokens, frames = _tokens(), []
    rng = np.random.default_rng(20261130)
    for attempt in range(20 * count):
        token = tokens[attempt % len(tokens)]
        image = photograph(token, rng, LEVELS["train"], size).image
        if bare_decode(reader.detector, image) == [token]:
            frames.append((image, token))
            if len(frames) == count:
                return frames
    raise RuntimeError(f"only {len(frames)} of {20 * count} frames at {size} were readable")


def _paired_rates(
    work: Callable[[Frame], list[str]], baseline: Callable[[Frame], list[str]], frames: Sequence[Frame]
) -> tuple[float, float, list[list[str]], list[list[str]]]:
    """Frames per second of `work` and `baseline`, alternating rounds (best round each); their results."""
    size = len(frames) // ROUNDS
    best_work = best_base = float("inf")
    work_out: list[list[str]] = []
    base_out: list[list[str]] = []
    for round_ in range(ROUNDS):
        chunk = frames[round_ * size : (round_ + 1) * size]
        start = time.perf_counter()
        work_out += [work(frame) for frame in chunk]
        middle = time.perf_counter()
        base_out += [baseline(frame) for frame in chunk]
        end = time.perf_counter()
        best_work = min(best_work, middle - start)
        best_base = min(best_base, end - middle)
    return size / best_work, size / best_base, work_out, base_out


def run() -> list[Figure]:
    reader = QrReader()

    def bare(frame: Frame) -> list[str]:
        return bare_decode(reader.detector, frame)

    figures = []
    for size, count in FRAMES.items():
        frames = _readable_frames(reader, size, count)
        images = [image for image, _token in frames]
        rate, bare_rate, read, bare_read = _paired_rates(reader.decode, bare, images)
        expected = [[token] for _image, token in frames]
        if read != expected or bare_read != expected:
            wrong = sum(r != e for r, e in zip(read, expected, strict=True))
            bare_wrong = sum(r != e for r, e in zip(bare_read, expected, strict=True))
            raise RuntimeError(
                f"{size}: of {len(expected)} frames, QrReader misread {wrong} and the bare call {bare_wrong}"
            )
        figures.append(
            Figure(
                f"QR frames read/s, QrReader {size[0]}x{size[1]}",
                rate,
                "bare QRCodeDetectorAruco",
                bare_rate,
                "frames/s",
                f">= {TARGET:.2f}",
            )
        )
    rng = np.random.default_rng(7)
    for size in FRAMES:
        empty = [empty_frame(rng, size) for _ in range(EMPTY_FRAMES)]
        rate, bare_rate, read, bare_read = _paired_rates(reader.decode, bare, empty)
        if any(read) or any(bare_read):
            raise RuntimeError(f"{size}: a code was read in a frame without one")
        figures.append(
            Figure(
                f"frames without a code/s, QrReader {size[0]}x{size[1]}",
                rate,
                "bare QRCodeDetectorAruco",
                bare_rate,
                "frames/s",
            )
        )
    return figures
