"""Passengers recognised at the camera: each frame's faces matched, each showing's ticket checked once.

For each frame the face pipeline finds the faces big enough to be named (the enrolment gate's eye distance)
and the matcher says who each is among the passengers this robot holds faces of. Faces are followed from
frame to frame by their boxes (models.faces.track): a face named less than a second ago (an unknown one,
0.3 s) keeps its name without being embedded again, which is most of a frame's cost. A known passenger is
debounced like a QR showing (by user id, `[tickets] debounce_s`: a face in view for seconds is one showing)
and then checked at the ticket desk (`TicketDesk.check_face`), which verifies their ticket's token as if it
had been shown. A face match alone opens nothing: the desk's verdict is the answer. Unknown faces are only
counted.

Rule: a check starts only from an identification made from a fresh embedding of the face in this frame.
A followed face's carried name only extends a showing that a fresh one started (so a passenger in view
stays one showing); someone stepping into another's box is counted under the other's name until the track
is due again, and can never cause a check.

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

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.exc import SQLAlchemyError

from models.errors import ModelsError
from models.faces.identify import Identification
from models.faces.identify import Verdict as Match
from models.faces.image import BgrImage
from models.faces.pipeline import FacePipeline
from models.faces.track import MAX_AGE_S, FaceTracker
from robot_agent.errors import FacesError
from robot_agent.faces.matcher import Matcher
from robot_agent.tickets import CheckOutcome, TicketDesk
from robot_agent.vision.camera import CameraEnded, Frame
from robot_agent.vision.fanout import FrameFeed, Subscription
from robot_agent.vision.scan import Debouncer, latency_p50_ms, report_outcome

log = logging.getLogger(__name__)

REFRESH_S = 30.0
T = TypeVar("T")


@dataclass
class FaceStats:
    frames: int = 0
    faces: int = 0  # faces big enough to be named: embedded and looked up, or followed
    embedded_faces: int = 0  # of those, embedded and looked up afresh
    tracked_faces: int = 0  # of those, followed from the last frames and not embedded again
    matched: int = 0
    unknown: int = 0
    checks: int = 0  # showings checked at the desk (a passenger with a ticket on this train)
    valid: int = 0
    no_ticket: int = 0  # showings of passengers with no ticket on this train here: nothing recorded
    failed_frames: int = 0  # frames the pipeline could not process
    # Frame capture to verdict, the last 1,000.
    latencies_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1_000))


@dataclass(frozen=True, slots=True)
class Sighting:
    """A face in a frame: who it is (None: unknown), and whether that comes from a fresh embedding of it in
    this frame (else it is carried by its track from an earlier frame's)."""

    identity: uuid.UUID | None
    fresh: bool


class FaceNamer:
    """The watcher's per-frame path, without the desk: one detection, the tracker, an embedding of each face
    due for one, and `identify` for those (the matcher's, in the watcher). Not thread-safe (the pipeline
    is not): one thread calls `name`."""

    def __init__(
        self,
        pipeline: FacePipeline,
        identify: Callable[[NDArray[np.float32]], Identification[uuid.UUID]],
        tracker: FaceTracker[uuid.UUID] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.identify = identify
        self.tracker: FaceTracker[uuid.UUID] = tracker if tracker is not None else FaceTracker()

    def name(self, image: BgrImage, at_s: float) -> list[Sighting]:
        """The faces big enough to be named in `image`, taken at `at_s` (monotonic seconds), best detection
        first; raises ModelsError for an image the pipeline refuses."""
        min_eye_distance = self.pipeline.limits.min_eye_distance
        located = [face for face in self.pipeline.locate(image) if face.eye_distance >= min_eye_distance]
        tracks = self.tracker.associate([face.box for face in located], at_s)
        due = self.tracker.to_embed(tracks, at_s)
        found = self.pipeline.embed(image, [located[i] for i in due])
        for i, face in zip(due, found, strict=True):
            who = self.identify(face.embedding)
            identity = who.identity if who.verdict is Match.MATCH else None
            self.tracker.identified(tracks[i], identity, at_s)
        fresh = set(due)
        return [Sighting(track.identity, i in fresh) for i, track in enumerate(tracks)]


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
        on_sighting: Callable[[uuid.UUID | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.frames = frames
        self.pipeline = pipeline
        self.matcher = matcher
        self.desk = desk
        self.debouncer = Debouncer(debounce_s)
        self.refresh_s = refresh_s
        self.on_outcome = on_outcome
        # The behaviour's eyes: a passenger's new showing (their id, before its check), else None for a frame
        # with faces in it ("someone is here"). Called on the event loop; the id is never logged.
        self.on_sighting = on_sighting
        # While it says so (the e-stop is pressed), no passenger is checked (TicketScanner.hold says why).
        self.hold: Callable[[], bool] | None = None
        self.held = 0
        self.stats = FaceStats()
        # A track ending sooner than the debounce window means that a followed face's carried name always
        # finds its showing still open (a frame gap longer than the window ends the track first).
        tracker: FaceTracker[uuid.UUID] = FaceTracker(max_age_s=min(MAX_AGE_S, debounce_s))
        self.namer = FaceNamer(pipeline, matcher.identify, tracker)
        self._faces_changed = False  # set by refresh (any thread), acted on in the worker
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
            "embedded_faces": stats.embedded_faces,
            "tracked_faces": stats.tracked_faces,
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
                    "camera source ended; face matching stops frames=%d faces=%d embedded=%d matched=%d "
                    "unknown=%d checks=%d valid=%d",
                    stats.frames,
                    stats.faces,
                    stats.embedded_faces,
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
        stats = self.stats
        stats.faces += len(seen)
        stats.embedded_faces += sum(s.fresh for s in seen)
        stats.tracked_faces += sum(not s.fresh for s in seen)
        stats.matched += sum(s.identity is not None for s in seen)
        stats.unknown += sum(s.identity is None for s in seen)
        # A passenger twice in a frame is one sighting, fresh if any of their faces was embedded afresh.
        fresh: dict[uuid.UUID, bool] = {}
        for sighting in seen:
            if sighting.identity is not None:
                fresh[sighting.identity] = fresh.get(sighting.identity, False) or sighting.fresh
        outcomes = []
        at_s = frame.mono_ns / 1e9
        named = False  # a new showing was reported to on_sighting in this frame
        for user_id, embedded in fresh.items():
            if (
                self.hold is not None and self.hold()
            ):  # as the scanner's hold: nothing checked, nothing counted
                self.held += 1
                continue
            if not embedded:  # a carried name: it may only keep a showing going (the rule above)
                self.debouncer.continue_showing(str(user_id), at_s)
                continue
            if not self.debouncer.new_showing(str(user_id), at_s):
                continue
            named = True
            if self.on_sighting is not None:
                self.on_sighting(user_id)
            outcome = await self._in_worker(self.desk.check_face, user_id)
            if outcome is None:
                self.stats.no_ticket += 1
                continue
            report_outcome(self.stats, outcome, frame, self.on_outcome, log, "passenger recognised")
            outcomes.append(outcome)
        if seen and not named and self.on_sighting is not None:
            self.on_sighting(None)
        return outcomes

    def close(self) -> None:
        """Wait for the worker's current frame, then release the pipeline's models (blocks: call it off the
        event loop)."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        self.pipeline.close()

    async def _in_worker(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, call, *args)

    # -- the worker thread (and refresh, from any) ------------------------------------------------------

    def _identify(self, frame: Frame) -> list[Sighting]:
        self._refresh_now_and_then()
        if self._faces_changed:  # a name carried from before the change may be withdrawn or wrong now
            self._faces_changed = False
            self.namer.tracker.clear()
        try:
            return self.namer.name(frame.image, frame.mono_ns / 1e9)
        except ModelsError as err:  # an image the pipeline refuses (size, type): skip the frame
            self.stats.failed_frames += 1
            self._warn_once("frame", "face matching skipped a frame: %s", err)
            return []

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
            self._faces_changed = True
            log.info("enrolled faces refreshed added=%d removed=%d", added, removed)

    def _warn_once(self, kind: str, message: str, err: Exception) -> None:
        if kind in self._warned:
            log.debug(message, err)
            return
        self._warned.add(kind)
        log.warning(message, err)
