"""Passengers recognised at the camera: each frame's faces matched, each showing's ticket checked once.

For each frame the face pipeline finds the faces big enough to be named (the enrolment gate's eye distance)
and the matcher says who each is among the passengers this robot holds faces of. A known passenger is
debounced like a QR showing (by user id, `[tickets] debounce_s`: a face in view for seconds is one showing)
and then checked at the ticket desk (`TicketDesk.check_face`), which verifies their ticket's token as if it
had been shown. A face match alone opens nothing: the desk's verdict is the answer. Unknown faces are only
counted.

The pipeline is not safe to share between threads and blocks for tens of milliseconds a frame, so the watcher
runs it, the matcher and the desk in its own worker thread, one frame at a time; its frames come from a
latest-only slot, so a slow frame skips frames rather than queueing them, and never holds up the QR scanner.

The matcher is refreshed from the database every `refresh_s` seconds (one query of ids when nothing changed),
so that a `robot-agent faces enroll` beside the running agent is seen; down-sync refreshes it at once after
it changed faces. Nothing biometric, and no user id, is logged.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from models.errors import ModelsError
from models.faces.identify import Verdict as Match
from models.faces.pipeline import FacePipeline
from robot_agent.errors import FacesError
from robot_agent.faces.matcher import Matcher
from robot_agent.tickets import CheckOutcome, TicketDesk
from robot_agent.vision.camera import CameraEnded, Frame
from robot_agent.vision.fanout import FrameFeed, Subscription
from robot_agent.vision.scan import Debouncer, latency_p50_ms

log = logging.getLogger(__name__)

REFRESH_S = 30.0
T = TypeVar("T")


@dataclass
class FaceStats:
    frames: int = 0
    faces: int = 0  # faces big enough to be named, embedded and looked up
    matched: int = 0
    unknown: int = 0
    checks: int = 0  # showings checked at the desk (a passenger with a ticket on this train)
    valid: int = 0
    no_ticket: int = 0  # showings of passengers with no ticket on this train here: nothing recorded
    failed_frames: int = 0  # frames the pipeline could not process
    # Frame capture to verdict, the last 1,000.
    latencies_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1_000))


@dataclass(frozen=True)
class _Seen:
    faces: int
    matched: list[uuid.UUID]  # one entry per matched face, in detection order


class FaceWatcher:
    """Reads frames from `frames`, names the faces in them with `pipeline` and `matcher`, checks each new
    showing of a known passenger at `desk` and hands each outcome to `on_outcome`. Owns the pipeline and its
    worker thread: `close()` once `run()` has ended."""

    def __init__(
        self,
        frames: FrameFeed,
        pipeline: FacePipeline,
        matcher: Matcher,
        desk: TicketDesk,
        debounce_s: float,
        *,
        refresh_s: float = REFRESH_S,
        on_outcome: Callable[[CheckOutcome, Frame], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.frames = frames
        self.pipeline = pipeline
        self.matcher = matcher
        self.desk = desk
        self.debouncer = Debouncer(debounce_s)
        self.refresh_s = refresh_s
        self.on_outcome = on_outcome
        self.stats = FaceStats()
        self._clock = clock
        self._refreshed_at = clock()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="face watcher")
        self._warned: set[str] = set()

    def snapshot(self) -> dict[str, Any]:
        """Counters for telemetry (no user ids, nothing biometric)."""
        stats = self.stats
        return {
            "frames": stats.frames,
            "skipped_frames": self.frames.skipped if isinstance(self.frames, Subscription) else None,
            "enrolled": len(self.matcher),
            "faces": stats.faces,
            "matched": stats.matched,
            "unknown": stats.unknown,
            "checks": stats.checks,
            "valid": stats.valid,
            "no_ticket": stats.no_ticket,
            "failed_frames": stats.failed_frames,
            "latency_p50_ms": latency_p50_ms(stats.latencies_ms),
        }

    async def run(self) -> None:
        """Watch until cancelled, or until the camera's source ends."""
        while True:
            try:
                frame = await self.frames.next_frame()
            except CameraEnded:
                stats = self.stats
                log.info(
                    "camera source ended; face matching stops frames=%d faces=%d matched=%d unknown=%d "
                    "checks=%d valid=%d",
                    stats.frames,
                    stats.faces,
                    stats.matched,
                    stats.unknown,
                    stats.checks,
                    stats.valid,
                )
                return
            await self.watch(frame)

    async def watch(self, frame: Frame) -> list[CheckOutcome]:
        """Check the new showings of known passengers in one frame."""
        self.stats.frames += 1
        seen = await self._in_worker(self._identify, frame)
        self.stats.faces += seen.faces
        self.stats.matched += len(seen.matched)
        self.stats.unknown += seen.faces - len(seen.matched)
        outcomes = []
        for user_id in dict.fromkeys(seen.matched):  # a passenger twice in a frame is one sighting
            if not self.debouncer.new_showing(str(user_id), frame.mono_ns / 1e9):
                continue
            outcome = await self._in_worker(self.desk.check_face, user_id)
            if outcome is None:
                self.stats.no_ticket += 1
                continue
            latency_ms = (time.monotonic_ns() - frame.mono_ns) / 1e6
            self.stats.checks += 1
            self.stats.valid += outcome.ok
            self.stats.latencies_ms.append(latency_ms)
            log.info(
                "passenger recognised verdict=%s frame=%d latency_ms=%.0f",
                outcome.verdict.value,
                frame.seq,
                latency_ms,
            )
            if self.on_outcome is not None:
                self.on_outcome(outcome, frame)
            outcomes.append(outcome)
        return outcomes

    def close(self) -> None:
        """Wait for the worker's current frame, then release the pipeline's models (blocks: call it off the
        event loop)."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        self.pipeline.close()

    async def _in_worker(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, call, *args)

    # -- the worker thread (and refresh, from any) ------------------------------------------------------

    def _identify(self, frame: Frame) -> _Seen:
        self._refresh_now_and_then()
        try:
            found = self.pipeline.faces(frame.image, self.pipeline.limits.min_eye_distance)
        except ModelsError as err:  # an image the pipeline refuses (size, type): skip the frame
            self.stats.failed_frames += 1
            self._warn_once("frame", "face matching skipped a frame: %s", err)
            return _Seen(0, [])
        matched = []
        for face in found:
            who = self.matcher.identify(face.embedding)
            if who.verdict is Match.MATCH and who.identity is not None:
                matched.append(who.identity)
        return _Seen(len(found), matched)

    def _refresh_now_and_then(self) -> None:
        now = self._clock()
        if now - self._refreshed_at >= self.refresh_s:
            self._refreshed_at = now
            self.refresh()

    def refresh(self) -> None:
        """Bring the matcher to the database's faces (down-sync's `faces_changed` hook; any thread)."""
        try:
            added, removed = self.matcher.refresh()
        except (FacesError, SQLAlchemyError) as err:
            self._warn_once("refresh", "the enrolled faces could not be refreshed: %s", err)
            return
        if added or removed:
            log.info("enrolled faces refreshed added=%d removed=%d", added, removed)

    def _warn_once(self, kind: str, message: str, err: Exception) -> None:
        if kind in self._warned:
            log.debug(message, err)
            return
        self._warned.add(kind)
        log.warning(message, err)
