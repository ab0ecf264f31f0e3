"""Identification from distances: who a face is, among candidates an index (or a brute-force scan) found.

Candidates are (identity, distance) pairs, an identity possibly several times (one per enrolled
embedding). The answer names the nearest identity only when it is within the threshold and, if asked, far
enough ahead of the next identity; otherwise the face is unknown, and an unknown face never names anyone,
not even the nearest. The distance and the margin are reported either way (they name no one).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from models.faces.errors import FacesError

Identity = TypeVar("Identity", bound=Hashable)


class Verdict(enum.StrEnum):
    MATCH = "match"
    NO_CANDIDATES = "no_candidates"  # nobody enrolled, or the index returned nothing
    TOO_FAR = "too_far"  # the nearest identity is beyond the threshold
    AMBIGUOUS = "ambiguous"  # within the threshold, but the second identity is nearly as near


@dataclass(frozen=True, slots=True)
class Identification(Generic[Identity]):
    """`identity` is set only for a match. `distance` is to the nearest identity (inf with no candidates);
    `margin` is how much farther the second-best different identity is (inf when there is none)."""

    verdict: Verdict
    identity: Identity | None
    distance: float
    margin: float


def identify(
    candidates: Iterable[tuple[Identity, float]], threshold: float, min_margin: float = 0.0
) -> Identification[Identity]:
    """The identity the candidates' distances name, or none: a match needs the nearest identity's distance
    <= `threshold` and its margin to the second-best identity >= `min_margin`."""
    best: dict[Identity, float] = {}
    for identity, dist in candidates:
        if math.isnan(dist) or dist < 0:
            raise FacesError(f"a candidate's distance is {dist}: distances are numbers >= 0")
        if dist < best.get(identity, math.inf):
            best[identity] = dist
    if not best:
        return Identification(Verdict.NO_CANDIDATES, None, math.inf, math.inf)
    ranked = sorted(best.items(), key=lambda item: item[1])
    nearest, dist = ranked[0]
    margin = ranked[1][1] - dist if len(ranked) > 1 else math.inf
    if dist > threshold:
        return Identification(Verdict.TOO_FAR, None, dist, margin)
    if margin < min_margin:
        return Identification(Verdict.AMBIGUOUS, None, dist, margin)
    return Identification(Verdict.MATCH, nearest, dist, margin)
