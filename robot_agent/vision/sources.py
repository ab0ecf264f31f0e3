"""Where the camera's frames come from: a V4L2 device, a video file or an RTSP stream (`CaptureReader`,
through cv2.VideoCapture) or a folder of images (`FolderReader`), behind one small `Reader` interface.

A reader opens, reads and closes its source and says why it cannot: `SourceLost` (the camera reopens it with
backoff) or `SourceEnded` (a non-looping file or folder played to its end). Readers block; `camera.Camera`
calls them from its capture thread and owns pacing, the frame slot and the outage log.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
from numpy.typing import NDArray

from robot_agent.config import (
    CameraSection,
    CameraSource,
    DeviceSource,
    FileSource,
    FolderSource,
    RtspSource,
)
from robot_agent.errors import RobotAgentError

Image = NDArray[np.uint8]

# FFmpeg's own defaults would let a dead network camera hold a read (and so stop()) for 30 s.
RTSP_TIMEOUT_MS = 5000


class SourceLost(RobotAgentError):
    """The source cannot be opened or read now; the camera will reopen it."""


class SourceEnded(RobotAgentError):
    """A non-looping source has no more frames."""


class Reader(Protocol):
    label: str
    paced: bool  # whether frames must be spaced at the configured fps (the source has no clock)

    def open(self) -> None: ...
    def read(self) -> tuple[Image, str]: ...  # the image and the frame's source label
    def close(self) -> None: ...


def _rtsp_label(url: str) -> str:
    """The URL without user, password, query or fragment, any of which may carry a secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    try:
        netloc += f":{parts.port}" if parts.port else ""
    except ValueError:
        pass
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def source_label(source: CameraSource) -> str:
    match source:
        case DeviceSource():
            return f"device:{source.device}"
        case FileSource():
            return f"file:{source.path}"
        case FolderSource():
            return f"folder:{source.path}"
        case RtspSource():
            return _rtsp_label(source.url)


class CaptureReader:
    """A device, a video file or an RTSP stream, through cv2.VideoCapture."""

    def __init__(self, section: CameraSection, source: DeviceSource | FileSource | RtspSource) -> None:
        self._section = section
        self._source = source
        self._capture: cv2.VideoCapture | None = None
        self._read_since_open = 0
        self.label = source_label(source)
        self.paced = isinstance(source, FileSource)

    def open(self) -> None:
        source = self._source
        if isinstance(source, FileSource):
            if not source.path.is_file():
                raise SourceLost(f"file not found: {source.path}")
            # FFmpeg explicitly: CAP_ANY would read a name containing "%" as an image sequence.
            capture = cv2.VideoCapture(str(source.path), cv2.CAP_FFMPEG)
        elif isinstance(source, RtspSource):
            timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, RTSP_TIMEOUT_MS]
            timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, RTSP_TIMEOUT_MS]
            capture = cv2.VideoCapture(source.url, cv2.CAP_FFMPEG, timeouts)
        else:
            capture = cv2.VideoCapture(source.device, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            raise SourceLost(f"cannot open {self.label}")
        if isinstance(source, DeviceSource):
            # A request: the driver picks the nearest mode it has, which the first frame's size shows.
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._section.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._section.height)
            capture.set(cv2.CAP_PROP_FPS, self._section.fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's own queue would add latency
        self._capture = capture
        self._read_since_open = 0

    def read(self) -> tuple[Image, str]:
        if self._capture is None:
            raise SourceLost(f"{self.label} is not open")
        ok, image = self._capture.read()
        if ok:
            self._read_since_open += 1
            return np.asarray(image, dtype=np.uint8), self.label
        source = self._source
        if not isinstance(source, FileSource):
            raise SourceLost(f"read failed on {self.label}")
        if not source.path.is_file():
            raise SourceLost(f"file not found: {source.path}")
        if self._read_since_open == 0:
            raise SourceLost(f"no frame could be decoded from {source.path}")
        if not source.loop:
            raise SourceEnded
        # Reopening rewinds every container, where seeking to frame 0 works only in some.
        self.close()
        self.open()
        return self.read()

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class FolderReader:
    """The images of a folder that match a glob, in name order; after a reopen it resumes where it was."""

    paced = True

    def __init__(self, source: FolderSource, on_skip: Callable[[Path, str], None]) -> None:
        self._source = source
        self._on_skip = on_skip
        self._queue: collections.deque[Path] = collections.deque()
        self._last: str | None = None  # the last image delivered, relative to the folder
        self._decoded_this_pass = False
        self.label = source_label(source)

    def _list(self) -> list[Path]:
        folder = self._source.path
        try:
            images = sorted(p for p in folder.glob(self._source.pattern) if p.is_file())
        except OSError:
            images = []
        # Asked after the glob: a folder that goes while it runs globs to nothing or fails, as if empty.
        if not folder.is_dir():
            raise SourceLost(f"folder not found: {folder}")
        if not images:
            raise SourceLost(f"no image matches {self._source.pattern!r} in {folder}")
        return images

    def _name(self, path: Path) -> str:
        return path.relative_to(self._source.path).as_posix()

    def open(self) -> None:
        images = self._list()
        start = 0
        if self._last is not None:
            start = bisect.bisect_right([self._name(p) for p in images], self._last)
        if start == len(images):
            if not self._source.loop:
                raise SourceEnded
            start = 0
        self._queue = collections.deque(images[start:])
        # Only a whole pass with nothing decodable is a failure, not the tail of one.
        self._decoded_this_pass = start > 0

    def read(self) -> tuple[Image, str]:
        while True:
            if not self._queue:
                if not self._source.loop:
                    raise SourceEnded
                if not self._decoded_this_pass:
                    raise SourceLost(f"no image in {self._source.path} could be decoded")
                self._queue = collections.deque(self._list())
                self._decoded_this_pass = False
            path = self._queue.popleft()
            try:
                data = path.read_bytes()
            except OSError as err:
                if not self._source.path.is_dir():
                    raise SourceLost(f"folder not found: {self._source.path}") from err
                self._on_skip(path, f"cannot read: {err.strerror or err}")
                continue
            try:
                image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
            except cv2.error:
                image = None
            if image is None:
                self._on_skip(path, "cannot decode")
                continue
            self._last = self._name(path)
            self._decoded_this_pass = True
            return np.asarray(image, dtype=np.uint8), f"folder:{path}"

    def close(self) -> None:
        self._queue.clear()
