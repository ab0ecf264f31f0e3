"""Gaps in robots' sequence numbers: which seqs below a robot's highest never reached ingest.

A robot numbers its events 1, 2, 3, ... (its outbox's AUTOINCREMENT: never reused, and a rolled-back insert
takes its number back with it), and an event leaves the outbox only when ingest acked the batch holding it,
committed or dead-lettered. So every seq from 1 to the highest one seen should have been seen; one that was
not is an event still on its way (a batch in flight, or taken out of order by another worker) or lost.
Ingest records what it sees as merged runs (`sync_seq_ranges`); this module merges runs and reports the gaps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.db.tables import CLOUD_METADATA
from models.base_api import RobotSeqGaps, SeqGaps

Run = tuple[int, int]  # first and last seq, inclusive

_RANGES = CLOUD_METADATA.tables["sync_seq_ranges"]


def runs(seqs: Iterable[int]) -> list[Run]:
    """The seqs as the fewest runs, in order."""
    return merge((seq, seq) for seq in seqs)


def merge(pieces: Iterable[Run]) -> list[Run]:
    """Runs that overlap or touch joined into one, in order."""
    merged: list[Run] = []
    for first, last in sorted(pieces):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def missing(seen: Iterable[Run]) -> list[Run]:
    """What lies between 1 and the highest seq seen but was not seen."""
    holes: list[Run] = []
    expected = 1
    for first, last in merge(seen):
        if first > expected:
            holes.append((expected, first - 1))
        expected = max(expected, last + 1)
    return holes


async def report(conn: AsyncConnection) -> SeqGaps:
    """Every robot ingest has seen a batch from, with its highest seq and the gaps below it."""
    rows = await conn.execute(
        select(_RANGES.c.robot_id, _RANGES.c.first_seq, _RANGES.c.last_seq).order_by(
            _RANGES.c.robot_id, _RANGES.c.first_seq
        )
    )
    by_robot: dict[uuid.UUID, list[Run]] = {}
    for robot, first, last in rows:
        by_robot.setdefault(robot, []).append((first, last))
    robots = []
    for robot, seen in by_robot.items():
        holes = missing(seen)
        robots.append(
            RobotSeqGaps(
                robot_id=robot,
                last_seq=max(last for _, last in seen),
                missing=sum(last - first + 1 for first, last in holes),
                gaps=[[first, last] for first, last in holes],
            )
        )
    return SeqGaps(robots=robots)
