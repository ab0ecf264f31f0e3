"""The face tracker: boxes associated by overlap (greedy, highest first), tracks ending when unseen, when a
face is due for a fresh embedding (times given as the frames' own, no clock), an identity replaced at once by
a fresh embedding, two faces crossing; and the watcher's debouncer extension, which never starts a showing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.faces.detect import Box
from models.faces.track import FaceTracker, iou
from robot_agent.vision.scan import Debouncer

FRAME_S = 1 / 15


def box(x: float, y: float = 100.0, side: float = 100.0) -> Box:
    return Box(x, y, side, side)


def test_iou_of_boxes() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float64)
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 0, 0]], np.float64)
    assert iou(a, b)[0].tolist() == pytest.approx([1.0, 50 / 150, 0.0, 0.0])
    assert iou(a, b).shape == (2, 4)


@given(st.lists(st.tuples(*[st.floats(0, 500)] * 2, *[st.floats(1, 200)] * 2), min_size=1, max_size=6))
def test_iou_is_symmetric_and_within_0_and_1(rows: list[tuple[float, float, float, float]]) -> None:
    boxes = np.array(rows, np.float64)
    overlap = iou(boxes, boxes)
    assert np.all((overlap >= 0) & (overlap <= 1 + 1e-9))
    assert np.allclose(overlap, overlap.T)
    assert np.allclose(np.diag(overlap), 1)


def test_a_face_moving_a_few_pixels_a_frame_keeps_its_track_and_a_new_face_starts_one() -> None:
    tracker: FaceTracker[str] = FaceTracker()
    [first] = tracker.associate([box(100)], 0.0)
    for n in range(1, 30):
        [same] = tracker.associate([box(100 + 4 * n, 100 + n, 100 + n)], n * FRAME_S)
        assert same is first
    assert first.box == box(216, 129, 129)
    [same, new] = tracker.associate([box(216, 129, 129), box(450)], 2.0)
    assert same is first
    assert new is not first
    assert len(tracker.tracks) == 2


def test_the_highest_overlap_is_taken_first_and_each_track_continues_one_box() -> None:
    tracker: FaceTracker[str] = FaceTracker()
    [a, b] = tracker.associate([box(0), box(70)], 0.0)
    # Box order does not decide: the new box at 62 overlaps b (at 70) most, the one at 8 overlaps a most.
    [near_b, near_a] = tracker.associate([box(62), box(8)], FRAME_S)
    assert (near_a, near_b) == (a, b)

    # Two boxes on one track's place: the better one continues it, the other starts a track.
    alone: FaceTracker[str] = FaceTracker()
    [only] = alone.associate([box(0)], 0.0)
    [worse, better] = alone.associate([box(30), box(10)], FRAME_S)  # IoU 0.54 and 0.82
    assert better is only
    assert worse is not only
    assert len(alone.tracks) == 2


def test_overlap_below_the_threshold_starts_a_new_track() -> None:
    tracker: FaceTracker[str] = FaceTracker(iou_threshold=0.4)
    [first] = tracker.associate([box(0)], 0.0)
    [jumped] = tracker.associate([box(60)], FRAME_S)  # IoU 40/160 = 0.25
    assert jumped is not first


def test_a_track_unseen_for_max_age_ends_and_a_missed_frame_or_two_does_not() -> None:
    tracker: FaceTracker[str] = FaceTracker(max_age_s=0.5)
    [first] = tracker.associate([box(100)], 0.0)
    tracker.identified(first, "ann", 0.0)
    assert tracker.associate([], 0.2) == []
    [back] = tracker.associate([box(104)], 0.45)  # 0.45 s unseen: the same track, its identity kept
    assert back is first
    assert back.identity == "ann"
    tracker.associate([], 0.9)
    [later] = tracker.associate([box(104)], 0.96)  # 0.51 s unseen: ended
    assert later is not first
    assert later.identity is None
    assert tracker.tracks == [later]


def test_re_embedding_is_due_when_new_then_every_reembed_s_known_and_unknown_reembed_s_unknown() -> None:
    tracker: FaceTracker[str] = FaceTracker(reembed_s=1.0, unknown_reembed_s=0.3, max_age_s=0.5)
    known, unknown = tracker.associate([box(0), box(300)], 0.0)
    assert tracker.due(known, 0.0)
    assert tracker.due(unknown, 0.0)
    tracker.identified(known, "ann", 0.0)
    tracker.identified(unknown, None, 0.0)
    embedded: dict[str, list[int]] = {"known": [], "unknown": []}
    for n in range(1, 31):  # two seconds at 15 frames/s
        now = n * FRAME_S
        for name, track in zip(embedded, tracker.associate([box(n), box(300 - n)], now), strict=True):
            if tracker.due(track, now):
                embedded[name].append(n)
                tracker.identified(track, track.identity, now)
    # 1.0 s = frame 15; 0.3 s = 4.5 frames, so every 5th.
    assert embedded == {"known": [15, 30], "unknown": [5, 10, 15, 20, 25, 30]}


def test_a_fresh_embedding_replaces_the_tracks_identity_at_once() -> None:
    tracker: FaceTracker[str] = FaceTracker(reembed_s=1.0)
    [track] = tracker.associate([box(100)], 0.0)
    tracker.identified(track, "ann", 0.0)
    # Someone else steps into Ann's box: the track continues, still named Ann, until it is due.
    [stepped_in] = tracker.associate([box(102)], 0.5)
    assert stepped_in is track
    assert stepped_in.identity == "ann"
    assert not tracker.due(track, 0.5)
    [due] = tracker.associate([box(103)], 1.0)
    assert tracker.due(due, 1.0)
    tracker.identified(due, "bob", 1.0)  # the fresh embedding says Bob: Bob at once
    assert track.identity == "bob"
    tracker.identified(track, None, 1.1)  # and then nobody: unknown at once, due again sooner
    assert track.identity is None
    assert tracker.due(track, 1.45)
    assert not tracker.due(track, 1.35)


def test_two_faces_crossing_keep_their_own_tracks() -> None:
    """Ann walks right, Bob left, Bob a little nearer the camera (larger, lower): their boxes overlap for
    several frames as they pass, and each keeps its own track and name."""
    tracker: FaceTracker[str] = FaceTracker()
    ann, bob = tracker.associate([box(100, 100, 100), box(400, 130, 110)], 0.0)
    tracker.identified(ann, "ann", 0.0)
    tracker.identified(bob, "bob", 0.0)
    crossed = 0
    for n in range(1, 31):
        ann_box, bob_box = box(100 + 10 * n, 100, 100), box(400 - 10 * n, 130, 110)
        overlap = iou(
            np.array([[ann_box.x, ann_box.y, ann_box.w, ann_box.h]]),
            np.array([[bob_box.x, bob_box.y, bob_box.w, bob_box.h]]),
        )[0, 0]
        crossed += overlap > 0.3
        # Detections come best first, which need not be the same order from frame to frame.
        shown = [bob_box, ann_box] if n % 2 else [ann_box, bob_box]
        tracks = tracker.associate(shown, n * FRAME_S)
        assert tracks == ([bob, ann] if n % 2 else [ann, bob]), n
    assert crossed >= 3  # they did overlap a lot, for several frames
    assert (ann.identity, bob.identity) == ("ann", "bob")
    assert len(tracker.tracks) == 2


def test_clear_ends_every_track() -> None:
    tracker: FaceTracker[str] = FaceTracker()
    [track] = tracker.associate([box(0)], 0.0)
    tracker.identified(track, "ann", 0.0)
    tracker.clear()
    [after] = tracker.associate([box(0)], FRAME_S)
    assert after is not track
    assert tracker.due(after, FRAME_S)


def test_a_carried_name_keeps_a_showing_going_but_never_starts_one() -> None:
    debouncer = Debouncer(3.0)
    debouncer.continue_showing("ann", 0.0)  # no showing open: nothing happens
    assert debouncer.new_showing("ann", 0.5)
    for at_s in (2.0, 4.0, 6.0):  # carried sightings within the window keep the showing open
        debouncer.continue_showing("ann", at_s)
    assert not debouncer.new_showing("ann", 8.0)
    debouncer.continue_showing("ann", 11.5)  # past the window: the showing ended, and is not restarted
    assert debouncer.new_showing("ann", 11.6)


def test_new_faces_are_all_embedded_and_faces_due_together_are_spread_one_a_frame() -> None:
    tracker: FaceTracker[str] = FaceTracker(reembed_s=1.0, unknown_reembed_s=0.3, max_reembeds=1)
    boxes = [box(0), box(200), box(400)]
    tracks = tracker.associate(boxes, 0.0)
    assert tracker.to_embed(tracks, 0.0) == [0, 1, 2]  # three new faces: none waits
    for track, name in zip(tracks, ("ann", "bob", "cy"), strict=True):
        tracker.identified(track, name, 0.0)
    embedded: list[tuple[int, int]] = []
    for n in range(1, 61):
        now = n / 16  # 16 frames/s here: times exact in binary, 1 s = 16 frames
        shown = [*boxes, box(600)] if n >= 48 else boxes  # a fourth face from frame 48
        tracks = tracker.associate(shown, now)
        for i in tracker.to_embed(tracks, now):
            embedded.append((n, i))
            tracker.identified(tracks[i], tracks[i].identity or "dan", now)
    # All three due at frame 16, embedded one a frame (equally overdue: in order), then each a second after
    # its last; a new face is embedded at once, beside the one due (frame 48).
    first, second = [(16, 0), (17, 1), (18, 2)], [(32, 0), (33, 1), (34, 2)]
    assert embedded == [*first, *second, (48, 0), (48, 3), (49, 1), (50, 2)]


def test_the_longest_overdue_face_is_embedded_first() -> None:
    tracker: FaceTracker[str] = FaceTracker(reembed_s=1.0, unknown_reembed_s=0.25, max_age_s=2.0)
    known, unknown = tracker.associate([box(0), box(200)], 0.0)
    tracker.identified(known, "ann", 0.0)
    tracker.identified(unknown, None, 0.625)
    tracks = tracker.associate([box(0), box(200)], 1.25)
    # Ann is 0.25 s overdue, the unknown face 0.375 s: the unknown one first, Ann in the next frame.
    assert tracker.to_embed(tracks, 1.25) == [1]
    tracker.identified(unknown, None, 1.25)
    assert tracker.to_embed(tracker.associate([box(0), box(200)], 1.3125), 1.3125) == [0]
