"""The robot's camera: frames from a V4L2 device, a video file, an RTSP stream or a folder of images.

Newest frame wins. A capture thread reads the source as fast as it delivers (a file or a folder, which have
no clock of their own, at the configured fps) and puts each frame into a single slot, replacing any frame
nobody has taken yet; the replaced frame is counted as dropped. Consumers (face matching, QR decoding) are
slower than the camera and uneven; a queue would grow behind them and every decision would be made on an
ever older picture of the gate. With one slot, what a consumer takes is at most one frame period old plus
its own processing time, whatever that time is. Capture runs in a thread, not on the event loop, because
OpenCV's reads block.

A source that fails (cannot be opened, a read fails, the file or folder vanishes) is reopened with
exponential backoff. The outage is logged once as a WARNING and its end once as an INFO; nothing escapes the
thread. A non-looping file or folder that has been played to its end is "ended", which is no error.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from robot_agent.config import CameraSection, FolderSource, RtspSource
from robot_agent.errors import RobotAgentError
from robot_agent.vision.sources import CaptureReader, FolderReader, Image, Reader, SourceEnded, SourceLost

logger = logging.getLogger(__name__)

FPS_WINDOW_NS = 2_000_000_000
STOP_JOIN_S = 10.0


@dataclass(frozen=True)
class Frame:
    """One captured image and when and where it was taken."""

    image: Image  # BGR, as OpenCV gives it
    seq: int  # 1, 2, 3... per Camera, in capture order
    mono_ns: int  # time.monotonic_ns() when captured
    wall: datetime.datetime  # aware UTC, when captured
    source: str  # "device:0", "file:/p/x.avi", "folder:/p/img_003.png", an RTSP URL without credentials


@dataclass(frozen=True)
class CameraStats:
    """A Camera's counters now: captured == consumed + dropped, plus 1 while a frame waits in the slot."""

    source: str  # the source's label, without credentials
    captured: int  # frames delivered by the source
    consumed: int  # frames taken by latest() or next_frame()
    dropped: int  # frames replaced by a newer one before anybody took them
    skipped_images: int  # folder images that could not be read or decoded
    fps: float  # frames captured per second over the last two seconds
    reconnects: int  # attempts to reopen the source after it failed
    connected: bool  # the source is open and delivering frames
    ended: bool  # a non-looping file or folder has been played to its end
    last_error: str | None  # why the source failed last, if it ever did


class CameraEnded(RobotAgentError):
    """No frame will come any more: the non-looping source has ended, or the camera was stopped."""


class Camera:
    """Captures frames in a thread; consumers take the newest with latest() or await next_frame()."""

    def __init__(
        self, section: CameraSection, *, backoff_initial_s: float = 0.1, backoff_max_s: float = 5.0
    ) -> None:
        source = section.source
        self._reader: Reader = (
            FolderReader(source, self._skip)
            if isinstance(source, FolderSource)
            else CaptureReader(section, source)
        )
        # What an error text could quote of an RTSP URL (the URL itself, its password), and what replaces it.
        self._redactions: list[tuple[str, str]] = []
        if isinstance(source, RtspSource):
            self._redactions.append((source.url, self._reader.label))
            if password := urlsplit(source.url).password:
                self._redactions.append((password, "***"))
        self._period_ns = round(1e9 / section.fps)
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards everything below
        self._slot: Frame | None = None
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._recent: collections.deque[int] = collections.deque()
        self._captured = self._consumed = self._dropped = self._skipped = self._reconnects = 0
        self._connected = self._ended = False
        self._last_error: str | None = None
        self._outage_since_ns: int | None = None
        self._warned_images: set[Path] = set()
        self._streamed = False  # the capture thread's own: frames came since the source was last opened

    # -- consumers' side ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the capture thread; a Camera starts once."""
        if self._thread is not None:
            raise RuntimeError("a Camera can be started only once")
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the capture thread, wait for it to release the source (at most one read), wake waiters."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_JOIN_S)
            if thread.is_alive():
                logger.warning(
                    "camera source=%s still reading %g s after stop", self._reader.label, STOP_JOIN_S
                )
        with self._lock:
            self._wake_locked()

    def __enter__(self) -> Camera:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def latest(self) -> Frame | None:
        """The newest frame nobody has taken yet, now taken; None if there is none."""
        with self._lock:
            return self._take_locked()

    # The timeout parameter is the interface callers were promised (ASYNC109 prefers asyncio.timeout).
    async def next_frame(self, timeout: float | None = None) -> Frame:  # noqa: ASYNC109
        """Wait for a frame newer than the last one taken; TimeoutError after `timeout` seconds,
        CameraEnded once the source has ended (after its last frame) or the camera was stopped."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                waiter = (loop, asyncio.Event())
                with self._lock:
                    frame = self._take_locked()
                    if frame is not None:
                        return frame
                    if self._ended:
                        raise CameraEnded(f"camera source={self._reader.label} has ended")
                    if self._stopping.is_set():
                        raise CameraEnded("camera stopped")
                    self._waiters.add(waiter)
                try:
                    await waiter[1].wait()
                finally:
                    with self._lock:
                        self._waiters.discard(waiter)

    def stats(self) -> CameraStats:
        """The counters as they are now."""
        now = time.monotonic_ns()
        with self._lock:
            while self._recent and self._recent[0] < now - FPS_WINDOW_NS:
                self._recent.popleft()
            count = len(self._recent)
            fps = (count - 1) * 1e9 / (now - self._recent[0]) if count >= 2 else 0.0
            return CameraStats(
                source=self._reader.label,
                captured=self._captured,
                consumed=self._consumed,
                dropped=self._dropped,
                skipped_images=self._skipped,
                fps=fps,
                reconnects=self._reconnects,
                connected=self._connected,
                ended=self._ended,
                last_error=self._last_error,
            )

    def _take_locked(self) -> Frame | None:
        frame, self._slot = self._slot, None
        if frame is not None:
            self._consumed += 1
        return frame

    def _wake_locked(self) -> None:
        for loop, event in self._waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: its waiter is gone with it
                pass
        self._waiters.clear()

    # -- the capture thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._capture_until_stopped_or_ended()
        finally:
            with self._lock:
                self._connected = False

    def _capture_until_stopped_or_ended(self) -> None:
        backoff = self._backoff_initial_s
        first = True
        while not self._stopping.is_set():
            if not first:
                with self._lock:
                    self._reconnects += 1
            first = False
            self._streamed = False
            try:
                self._reader.open()
                try:
                    self._stream()
                finally:
                    self._reader.close()
                return  # _stream returns only when the camera is stopping
            except SourceEnded:
                self._end()
                return
            except SourceLost as err:
                self._fail(str(err), unexpected=False)
            except Exception as err:  # whatever a driver throws, the camera must live on
                self._fail(f"{type(err).__name__}: {err}", unexpected=True)
            if self._streamed:
                backoff = self._backoff_initial_s
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self._backoff_max_s)

    def _stream(self) -> None:
        due = time.monotonic_ns()
        while True:
            image, label = self._reader.read()
            if self._reader.paced:
                wait_ns = due - time.monotonic_ns()
                if wait_ns > 0 and self._stopping.wait(wait_ns / 1e9):
                    return
            if self._stopping.is_set():
                return
            self._publish(image, label)
            self._streamed = True
            # Late (a slow decode) means the next frame is due now, never a burst to catch up.
            due = max(due + self._period_ns, time.monotonic_ns())

    def _publish(self, image: Image, label: str) -> None:
        mono_ns = time.monotonic_ns()
        wall = datetime.datetime.now(datetime.UTC)
        with self._lock:
            self._captured += 1
            frame = Frame(image=image, seq=self._captured, mono_ns=mono_ns, wall=wall, source=label)
            if self._slot is not None:
                self._dropped += 1
            self._slot = frame
            self._recent.append(mono_ns)
            self._connected = True
            outage_since_ns, self._outage_since_ns = self._outage_since_ns, None
            reconnects = self._reconnects
            self._wake_locked()
        if outage_since_ns is not None:
            logger.info(
                "camera source=%s back after %.1f s, reconnects=%d",
                self._reader.label,
                (mono_ns - outage_since_ns) / 1e9,
                reconnects,
            )
        elif frame.seq == 1:
            height, width = image.shape[:2]
            logger.info("camera source=%s streaming %dx%d", self._reader.label, width, height)

    def _fail(self, text: str, *, unexpected: bool) -> None:
        for secret, replacement in self._redactions:
            text = text.replace(secret, replacement)
        with self._lock:
            self._connected = False
            self._last_error = text
            first = self._outage_since_ns is None
            if first:
                self._outage_since_ns = time.monotonic_ns()
        if first:
            logger.warning(
                "camera source=%s unavailable: %s; reopening it with backoff up to %g s",
                self._reader.label,
                text,
                self._backoff_max_s,
                exc_info=unexpected and not self._redactions,  # a traceback's message cannot be redacted
            )
        else:
            logger.debug("camera source=%s still unavailable: %s", self._reader.label, text)

    def _end(self) -> None:
        with self._lock:
            self._ended = True
            self._connected = False
            captured = self._captured
            self._wake_locked()
        logger.info("camera source=%s ended after %d frames", self._reader.label, captured)

    def _skip(self, path: Path, why: str) -> None:
        with self._lock:
            self._skipped += 1
            first = path not in self._warned_images
            self._warned_images.add(path)
        if first:  # a looping folder would repeat it every pass
            logger.warning("camera skipped image file=%s: %s", path, why)
