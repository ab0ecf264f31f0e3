"""Tickets shown to the camera: each frame's QR codes read, each showing checked once, the answer measured.

A passenger holds a code up for a second or two; the camera sees it in dozens of frames. A showing is checked
once: a code is checked when it was not seen within the debounce window, and every sighting restarts the
window, so a code held still is one showing however long it is held. The key is the ticket's id where the
code names one (a wallet redraws its live code every few seconds: new text, the same ticket), its text
otherwise. Showing the ticket again later is a new showing, which the desk answers with "already checked by
this robot at HH:MM".

Decoding and checking run in worker threads; the camera keeps only its newest frame (and so does the scanner's
slot when the agent shares the camera with the face watcher, `fanout.py`), so a slow check skips frames
instead of queueing them, and the frame-to-verdict latency stays bounded.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from robot_agent.errors import RobotAgentError
from robot_agent.tickets import CheckMethod, CheckOutcome, TicketDesk, ticket_id_of
from robot_agent.vision.camera import Camera, CameraEnded, Frame
from robot_agent.vision.fanout import FrameFeed, Subscription
from robot_agent.vision.qr import QrReader, as_gray

log = logging.getLogger(__name__)

_PRUNE_EVERY = 256
# The retry passes' share of one core on frames without a code: at 1280x720 and 15 fps unrationed they take
# ~30% (20 ms a frame), at 640x480 and 30 fps ~50%.
RETRY_SHARE = 0.2
RETRY_BURST_S = 0.1


class Debouncer:
    """Whether a sighting starts a new showing: the key was not seen within `window_s` before it."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last_seen: dict[str, float] = {}
        self._calls = 0

    def new_showing(self, key: str, at_s: float) -> bool:
        last = self._last_seen.get(key)
        self._last_seen[key] = at_s
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            horizon = at_s - self.window_s
            self._last_seen = {k: t for k, t in self._last_seen.items() if t >= horizon}
        return last is None or at_s - last > self.window_s

    def continue_showing(self, key: str, at_s: float) -> None:
        """A sighting that may keep an open showing going but never starts one (the face watcher's name
        carried by a track, not made afresh): it counts only when the key was seen within `window_s`."""
        last = self._last_seen.get(key)
        if last is not None and last <= at_s and at_s - last <= self.window_s:
            self._last_seen[key] = at_s


class RetryBudget:
    """How much of one core the QR reader's retry passes may take on frames where the first pass read nothing.

    A token bucket in seconds of CPU: it fills at `share` seconds per second of frame time up to `burst_s`,
    and each retry run spends what it took. Frames without a code are most frames, and the retries cost 3-7
    times the first pass there (`robot_agent.vision.qr`); a showing lasts dozens of frames, so rationing the
    retries costs a frame or two of latency, not the showing.
    """

    def __init__(self, share: float = RETRY_SHARE, burst_s: float = RETRY_BURST_S) -> None:
        self.share = share
        self.burst_s = burst_s
        self._credit_s = burst_s
        self._last_s: float | None = None

    def allows(self, at_s: float) -> bool:
        """Whether a retry may run for a frame taken at `at_s` (monotonic seconds)."""
        if self._last_s is not None and at_s > self._last_s:
            self._credit_s = min(self.burst_s, self._credit_s + (at_s - self._last_s) * self.share)
        self._last_s = at_s if self._last_s is None else max(self._last_s, at_s)
        return self._credit_s > 0

    def spend(self, cost_s: float) -> None:
        self._credit_s -= cost_s


@dataclass
class ScanStats:
    frames: int = 0
    retried: int = 0  # frames whose first pass read nothing and the retry budget allowed the retries
    skipped_retries: int = 0  # frames whose first pass read nothing and the budget was spent
    checks: int = 0
    valid: int = 0
    # Frame capture to verdict, the last 1,000.
    latencies_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1_000))


def camera_snapshot(camera: Camera) -> dict[str, Any]:
    """The camera's counters for telemetry."""
    stats = camera.stats()
    return {
        "source": stats.source,
        "connected": stats.connected,
        "ended": stats.ended,
        "fps": round(stats.fps, 1),
        "dropped_frames": stats.dropped,
        "reconnects": stats.reconnects,
    }


def latency_p50_ms(latencies: Iterable[float]) -> float | None:
    """The median of the latencies kept, for telemetry."""
    ordered = sorted(latencies)
    return round(ordered[len(ordered) // 2], 1) if ordered else None


class CheckCounts(Protocol):
    """The counters a camera reader keeps of the checks it made (ScanStats, the face watcher's FaceStats)."""

    checks: int
    valid: int
    latencies_ms: collections.deque[float]


def report_outcome(
    stats: CheckCounts,
    outcome: CheckOutcome,
    frame: Frame,
    on_outcome: Callable[[CheckOutcome, Frame], None] | None,
    logger: logging.Logger,
    shown: str,
) -> None:
    """A camera reader's check answered: counted with its frame-to-verdict latency, logged as `shown` (no
    ticket or user id), handed to `on_outcome`. The scanner's and the face watcher's one way."""
    latency_ms = (time.monotonic_ns() - frame.mono_ns) / 1e6
    stats.checks += 1
    stats.valid += outcome.ok
    stats.latencies_ms.append(latency_ms)
    logger.info("%s verdict=%s frame=%d latency_ms=%.0f", shown, outcome.verdict.value, frame.seq, latency_ms)
    if on_outcome is not None:
        on_outcome(outcome, frame)


class TicketScanner:
    """Reads frames from `frames` (the camera itself unless it is shared), checks each new showing at `desk`,
    hands each outcome to `on_outcome`."""

    def __init__(
        self,
        camera: Camera,
        desk: TicketDesk,
        debounce_s: float,
        *,
        reader: QrReader | None = None,
        on_outcome: Callable[[CheckOutcome, Frame], None] | None = None,
        on_code: Callable[[], None] | None = None,
        frames: FrameFeed | None = None,
    ) -> None:
        self.camera = camera
        self.frames: FrameFeed = frames or camera
        self.desk = desk
        self.reader = reader or QrReader()
        self.debouncer = Debouncer(debounce_s)
        self.on_outcome = on_outcome
        self.on_code = on_code  # a new showing goes to the desk (the behaviour's "code shown"), on the loop
        # While it says so (the e-stop is pressed), codes are read but not checked: a ticket checked while the
        # gate cannot open would be used up for nothing. The showing is not counted, so it is checked once
        # the hold ends.
        self.hold: Callable[[], bool] | None = None
        self.held = 0  # showings not checked because of the hold
        self.stats = ScanStats()
        self.retry_budget = RetryBudget()

    def snapshot(self) -> dict[str, Any]:
        """Counters for telemetry: the camera's, and the checks made (no codes, no ticket ids)."""
        return {
            "camera": camera_snapshot(self.camera),
            "frames": self.stats.frames,
            # Frames the camera gave while the scanner was busy with an earlier one (shared camera only).
            "skipped_frames": self.frames.skipped if isinstance(self.frames, Subscription) else None,
            "retried_frames": self.stats.retried,
            "skipped_retries": self.stats.skipped_retries,
            "checks": self.stats.checks,
            "valid": self.stats.valid,
            "latency_p50_ms": latency_p50_ms(self.stats.latencies_ms),
            "latency_max_ms": round(max(self.stats.latencies_ms), 1) if self.stats.latencies_ms else None,
        }

    async def run(self) -> None:
        """Scan until cancelled, or until a file or folder source ends."""
        while True:
            try:
                frame = await self.frames.next_frame()
            except CameraEnded:
                log.info("camera source ended; ticket scanning stops frames=%d", self.stats.frames)
                return
            await self.scan(frame)

    async def scan(self, frame: Frame) -> list[CheckOutcome]:
        """Check the new showings in one frame."""
        self.stats.frames += 1
        codes = await asyncio.to_thread(self._read, frame)
        outcomes = []
        for code in codes:
            ticket_id = ticket_id_of(code)
            key = str(ticket_id) if ticket_id is not None else code
            if self.hold is not None and self.hold():
                self.held += 1
                continue
            if not self.debouncer.new_showing(key, frame.mono_ns / 1e9):
                continue
            if self.on_code is not None:
                self.on_code()
            outcome = await asyncio.to_thread(self.desk.check, code, CheckMethod.CAMERA)
            report_outcome(self.stats, outcome, frame, self.on_outcome, log, "ticket shown")
            outcomes.append(outcome)
        return outcomes

    def _read(self, frame: Frame) -> list[str]:
        """The codes in `frame`: the reader's first passes, then its retries if the budget allows."""
        gray = as_gray(frame.image)  # once, for both calls
        if gray is None:
            return []
        codes = self.reader.decode(gray, retries=False)
        if codes:
            return codes
        if not self.retry_budget.allows(frame.mono_ns / 1e9):
            self.stats.skipped_retries += 1
            return []
        self.stats.retried += 1
        start = time.perf_counter()
        codes = self.reader.retry(gray)
        self.retry_budget.spend(time.perf_counter() - start)
        return codes


def codes_in_image(path: Path, reader: QrReader | None = None) -> list[str]:
    """The QR codes in an image file (a photo or screenshot of a ticket); raises `RobotAgentError` for a file
    that is no image or holds no code."""
    # imdecode over the bytes rather than imread: imread says nothing about why it failed.
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RobotAgentError(f"cannot read {path}: {err.strerror}") from err
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise RobotAgentError(f"{path} is not an image OpenCV can decode ({len(data)} bytes)")
    codes = (reader or QrReader()).decode(image)
    if not codes:
        raise RobotAgentError(f"no QR code found in {path} ({image.shape[1]}x{image.shape[0]})")
    return codes
