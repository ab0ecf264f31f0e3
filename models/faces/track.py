"""Faces followed from frame to frame by their boxes, so that a face already named is not embedded again.

At a train door the same few people stay in view for dozens of consecutive frames, and embedding is most of
a frame's cost (SFace ~20 ms a face, decisions §39). `FaceTracker.associate` links each frame's detections
to the faces of the previous frames by box overlap (IoU), greedily, highest overlap first, as the
association step of simple IoU trackers (SORT without its Kalman filter; at 15 frames/s a face moves a few
pixels a frame, so the last box is a good enough prediction). Each track carries the identity its last
fresh embedding gave (an identity, or None for unknown), when that embedding was made and when the track
was last seen. A track is due for a fresh embedding when it is new, when its identity is known and
`reembed_s` have passed since its last embedding, or when it is unknown and `unknown_reembed_s` have
passed (a face turning towards the camera gets another chance soon); `to_embed` takes every new track and
spreads the others over frames. A track not seen for `max_age_s` ends.

Security rule: a track's identity is a hint for saving work, never evidence. Someone who steps into
another person's box continues that person's track and is counted under their identity until the track is
re-embedded (after `reembed_s`, and at most a frame more per other face due with it); the fresh embedding
then replaces the identity at once, whether it names someone else or nobody (`identified`). Whoever acts
on an identity (the robot's ticket check) must act only on one made from a fresh embedding, never on a
track's carried one.

Pure: no I/O, no clock of its own (every call takes the frame's time in seconds).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from models.faces.detect import Box

Identity = TypeVar("Identity", bound=Hashable)

# Defaults for a camera at ~15 frames/s. IoU 0.4: a face moving 10 % of its width a frame still overlaps
# its last box by ~0.8, and two people side by side overlap far less than 0.4. Re-embedding a known face
# every second bounds how long a swapped identity can last; unknown faces every 0.3 s (~4 frames).
# Half a second unseen ends a track: a detector's missed frame or two is bridged, a person who left is not.
IOU_THRESHOLD = 0.4
REEMBED_S = 1.0
UNKNOWN_REEMBED_S = 0.3
MAX_AGE_S = 0.5
# Faces already named that fall due in the same frame are embedded one a frame (`to_embed`): at 15
# frames/s that is 15 re-embeddings a second, enough for four unknown faces at their 0.3 s.
MAX_REEMBEDS = 1


@dataclass(eq=False, slots=True)
class Track(Generic[Identity]):
    """One face followed across frames. `identity` and `embedded_at` come from its last fresh embedding
    (`embedded_at` None: never embedded yet; `identity` None: unknown)."""

    number: int
    box: Box
    seen_at: float
    identity: Identity | None = None
    embedded_at: float | None = None


def iou(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """The intersection over union of each box of `a` (n, 4: x, y, w, h) with each of `b` (m, 4): (n, m)."""
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    width = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    height = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = width * height
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _array(boxes: Sequence[Box]) -> NDArray[np.float64]:
    return np.array([(b.x, b.y, b.w, b.h) for b in boxes], np.float64).reshape(-1, 4)


class FaceTracker(Generic[Identity]):
    """The faces in view, followed by box overlap; see the module's docstring for when a face is due."""

    def __init__(
        self,
        *,
        iou_threshold: float = IOU_THRESHOLD,
        reembed_s: float = REEMBED_S,
        unknown_reembed_s: float = UNKNOWN_REEMBED_S,
        max_age_s: float = MAX_AGE_S,
        max_reembeds: int = MAX_REEMBEDS,
    ) -> None:
        if not 0 < iou_threshold <= 1:
            raise ValueError(f"iou_threshold is {iou_threshold}: it must be in (0, 1]")
        self.iou_threshold = iou_threshold
        self.reembed_s = reembed_s
        self.unknown_reembed_s = unknown_reembed_s
        self.max_age_s = max_age_s
        if max_reembeds < 1:
            raise ValueError(f"max_reembeds is {max_reembeds}: at least one face a frame must be embedded")
        self.max_reembeds = max_reembeds
        self.tracks: list[Track[Identity]] = []
        self._numbered = 0

    def associate(self, boxes: Sequence[Box], now: float) -> list[Track[Identity]]:
        """The track each box of this frame (taken at `now`, seconds) continues or starts, in `boxes`' order.

        Tracks unseen for more than `max_age_s` end first. Then each (box, track) pair overlapping by at
        least `iou_threshold` is taken, highest overlap first, while neither is taken yet; every box left
        starts a new track. A track continued by a box moves to it."""
        self.tracks = [t for t in self.tracks if now - t.seen_at <= self.max_age_s]
        chosen: list[Track[Identity] | None] = [None] * len(boxes)
        if boxes and self.tracks:
            overlap = iou(_array(boxes), _array([t.box for t in self.tracks]))
            rows, cols = np.nonzero(overlap >= self.iou_threshold)
            # Highest first; ties by box then track order, so that the answer does not depend on the sort.
            order = sorted(
                zip(rows.tolist(), cols.tolist(), strict=True), key=lambda p: (-float(overlap[p]), p)
            )
            taken: set[int] = set()
            for row, col in order:
                if chosen[row] is None and col not in taken:
                    chosen[row] = self.tracks[col]
                    taken.add(col)
        result: list[Track[Identity]] = []
        for box, track in zip(boxes, chosen, strict=True):
            if track is None:
                self._numbered += 1
                track = Track(self._numbered, box, now)
                self.tracks.append(track)
            track.box, track.seen_at = box, now
            result.append(track)
        return result

    def due(self, track: Track[Identity], now: float) -> bool:
        """Whether `track`'s face must be embedded afresh in the frame taken at `now`."""
        if track.embedded_at is None:
            return True
        wait = self.reembed_s if track.identity is not None else self.unknown_reembed_s
        return now - track.embedded_at >= wait

    def to_embed(self, tracks: Sequence[Track[Identity]], now: float) -> list[int]:
        """Which of this frame's `tracks` (as `associate` gave them) to embed afresh, by index: every new
        track (a face's first name should not wait), and of the tracks due again at most
        `max_reembeds`, longest overdue first. Re-embeddings falling due together (three faces that
        appeared together, due together every time) are so spread over the next frames instead of
        making one frame as slow as embedding them all: a due track waits at most a frame per face in
        view, and its overdue time wins it the next frame."""
        new = [i for i, track in enumerate(tracks) if track.embedded_at is None]
        overdue = sorted(
            (-self._overdue(track, now), i)
            for i, track in enumerate(tracks)
            if track.embedded_at is not None and self.due(track, now)
        )
        return sorted(new + [i for _, i in overdue[: self.max_reembeds]])

    def _overdue(self, track: Track[Identity], now: float) -> float:
        assert track.embedded_at is not None
        wait = self.reembed_s if track.identity is not None else self.unknown_reembed_s
        return now - track.embedded_at - wait

    def identified(self, track: Track[Identity], identity: Identity | None, now: float) -> None:
        """Record what a fresh embedding of `track`'s face, made at `now`, says: it replaces the track's
        identity at once, whatever the track said before (someone else, or nobody)."""
        track.identity, track.embedded_at = identity, now

    def clear(self) -> None:
        """End every track (the enrolled faces changed: every identity must be made afresh)."""
        self.tracks = []
