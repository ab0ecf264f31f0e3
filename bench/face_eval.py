"""The face evaluation's arithmetic: pairs from labelled embeddings, distance distributions, the true accept
rate at a false accept rate, drift under augmentation, and detection recall against hand-placed points.

Pure (no models, no files), so that tests check it on hand-made distances. A face the system did not find
is a sample without a vector: its pairs get an infinite distance, so a miss is a false reject and never a
false accept, and every rate is over all pairs, not only over the faces found.

Accepting means distance <= threshold, as `models.faces.identify` decides.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.faces.detect import Box, Point

Vector = NDArray[np.floating[Any]]
Distance = Callable[[Vector, Vector], float]


@dataclass(frozen=True, slots=True, eq=False)
class Sample:
    """One image's face as a system saw it: whose it is, which photograph it comes from (crops and
    augmentations of one photograph share it), which image of that photograph (`source`), how the image was
    varied (`variant`: "clean" or an augmentation's name), and its embedding (None: no face found)."""

    identity: str
    photo: str
    source: str
    variant: str
    vector: Vector | None


CLEAN = "clean"


def _distance(distance: Distance, a: Sample, b: Sample) -> float:
    if a.vector is None or b.vector is None:
        return math.inf
    return distance(a.vector, b.vector)


@dataclass(frozen=True, slots=True)
class Pairs:
    """Distances of the genuine and impostor pairs, and for each impostor pair the two identities."""

    genuine: list[float]
    impostor: list[float]
    impostor_identities: list[tuple[str, str]]

    @property
    def identity_pairs(self) -> int:
        """How many different pairs of people the impostor pairs come from."""
        return len({frozenset(people) for people in self.impostor_identities})

    def identity_pairs_accepted(self, threshold: float) -> int:
        """How many different pairs of people the impostor pairs accepted at `threshold` come from."""
        return len(
            {
                frozenset(people)
                for people, d in zip(self.impostor_identities, self.impostor, strict=True)
                if d <= threshold
            }
        )


def pairs(samples: Sequence[Sample], distance: Distance) -> Pairs:
    """Genuine pairs (same identity, different photographs) and impostor pairs (different identities), over
    every pair of samples. Pairs of one photograph with itself (its crops and augmentations) are neither:
    they measure stability (`drifts`), not recognition."""
    made = Pairs([], [], [])
    for a, b in itertools.combinations(samples, 2):
        if a.identity != b.identity:
            made.impostor.append(_distance(distance, a, b))
            made.impostor_identities.append((a.identity, b.identity))
        elif a.photo != b.photo:
            made.genuine.append(_distance(distance, a, b))
    return made


def drifts(samples: Sequence[Sample], distance: Distance) -> dict[str, list[float]]:
    """Per variant, the distance from each source's clean embedding to the same source varied (inf when
    either face was not found), in the order the samples come."""
    clean = {s.source: s for s in samples if s.variant == CLEAN}
    moved: dict[str, list[float]] = {}
    for sample in samples:
        if sample.variant != CLEAN and sample.source in clean:
            moved.setdefault(sample.variant, []).append(_distance(distance, clean[sample.source], sample))
    return moved


@dataclass(frozen=True, slots=True)
class Summary:
    """A distance distribution: how many pairs, how many had a face missing (infinite), and the finite
    distances' minimum, median and maximum (nan when none is finite)."""

    count: int
    missing: int
    minimum: float
    median: float
    maximum: float


def summarise(distances: Iterable[float]) -> Summary:
    values = np.asarray(list(distances), np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Summary(int(values.size), int(values.size), math.nan, math.nan, math.nan)
    return Summary(
        int(values.size),
        int(values.size - finite.size),
        float(finite.min()),
        float(np.median(finite)),
        float(finite.max()),
    )


@dataclass(frozen=True, slots=True)
class Rates:
    """What a threshold does to the pairs: accepted genuine pairs of all genuine ones, accepted impostor
    pairs of all impostor ones."""

    threshold: float
    true_accepts: int
    genuine: int
    false_accepts: int
    impostors: int

    @property
    def tar(self) -> float:
        return self.true_accepts / self.genuine if self.genuine else math.nan

    @property
    def far(self) -> float:
        return self.false_accepts / self.impostors if self.impostors else math.nan


def rates_at(genuine: Sequence[float], impostor: Sequence[float], threshold: float) -> Rates:
    """The accepts `threshold` gives (a pair is accepted when its distance <= threshold)."""
    return Rates(
        threshold,
        sum(1 for d in genuine if d <= threshold),
        len(genuine),
        sum(1 for d in impostor if d <= threshold),
        len(impostor),
    )


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The largest threshold whose false accept rate is at most `far`, and what it gives. `resolved` is
    False when there are too few impostor pairs for the rate to allow even one false accept: the threshold
    is then just under the nearest impostor, and the rate shown is 0 of `impostors`, not `far`."""

    far_target: float
    rates: Rates
    resolved: bool


def operating_point(genuine: Sequence[float], impostor: Sequence[float], far: float) -> OperatingPoint:
    """The operating point at false accept rate `far` (0 < far < 1) over these pairs. With the impostor
    distances sorted, k = floor(far x count) false accepts are allowed, so the threshold is the largest
    number below the (k+1)-th nearest impostor (k < count, as far < 1)."""
    if not 0 < far < 1:
        raise ValueError(f"a false accept rate is between 0 and 1, not {far}")
    if not impostor:
        raise ValueError("no impostor pairs: no false accept rate can be measured")
    ranked = np.sort(np.asarray(impostor, np.float64))
    allowed = math.floor(far * len(ranked) + 1e-9)
    threshold = float(np.nextafter(ranked[allowed], -math.inf))
    return OperatingPoint(far, rates_at(genuine, impostor, threshold), allowed >= 1)


@dataclass(frozen=True, slots=True)
class Recall:
    """Detections against hand-placed points: points with a box around them (each box counts for one
    point), points without, and boxes around no point."""

    found: int
    truth: int
    extra: int


def recall(boxes: Sequence[Box], truth: Sequence[Point]) -> Recall:
    """Each hand-placed point takes the nearest unused box (by centre) that contains it."""
    unused = list(boxes)
    found = 0
    for x, y in truth:
        around = [b for b in unused if b.x <= x <= b.x + b.w and b.y <= y <= b.y + b.h]
        if around:
            nearest = min(around, key=lambda b: math.hypot(b.x + b.w / 2 - x, b.y + b.h / 2 - y))
            unused.remove(nearest)
            found += 1
    return Recall(found, len(truth), len(unused))
