"""Face evaluation: each detector x embedder, and the face_recognition library, on the same real faces.

Each of 13 source images (bench/face_set.py) is shown clean and under each of the tests' 12 standard
augmentations (tests/support/face_augment.py STANDARD): 169 images per system. A genuine pair is one person
in two different photographs; an impostor pair two different people, clean or augmented (augmentations of
different people make most of the impostor pairs); an image and its own variants are not a pair but a
stability measure (drift: distance from the clean image's embedding). A face a system misses is a rejected
pair (bench/face_eval.py). TAR at a FAR is free of the distance's scale, so systems compare across metrics.

The figures: each system's TAR at FAR 0.1% against face_recognition's (the peer) on the same pairs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

import cv2

from bench.face_eval import (
    Pairs,
    Recall,
    Sample,
    Summary,
    drifts,
    operating_point,
    pairs,
    rates_at,
    recall,
    summarise,
)
from bench.face_set import (
    GROUP_FACES,
    GROUP_PHOTO,
    Image,
    System,
    face_recognition_system,
    images,
    photo,
    pipeline,
    pipeline_system,
    samples,
    scaled,
)
from bench.report import Figure, Table
from models.faces.choice import EMBEDDERS, DetectorName, EmbedderName, PipelineChoice
from models.faces.embed import Metric, distance
from tests.support import face_augment

FARS = (0.01, 0.001)
GROUP_WIDTHS = (1280, 960, 640)
FACE_RECOGNITION = "face_recognition 1.3.0"
# face_recognition's own `compare_faces` tolerance (dlib's documented 0.6), shown where ours are
FACE_RECOGNITION_TOLERANCE = 0.6


def _identities(result: Result) -> str:
    """The sentence on how few identities the numbers rest on, with the run's own counts."""
    people = len({s.identity for s in result.seen})
    p = result.pairs
    return (
        f"How few identities: {people} people in all, and only one of them (Obama) in more than one "
        "photograph, so every genuine pair is Obama against Obama (3 photographs; the two partial crops are "
        f"of the first). The {len(p.impostor):,} impostor pairs come from {p.identity_pairs} pairs of people "
        "seen many ways: augmentations multiply images, not identities, and one hard pair of people can "
        "supply every false accept. The numbers rank the systems on real faces; they cannot measure the "
        "false accept rate of a deployment, which needs thousands of people."
    )


@dataclass(frozen=True)
class Result:
    name: str
    metric: Metric
    threshold: float
    seen: list[Sample]
    pairs: Pairs
    moved: dict[str, list[float]]
    group: list[Recall]
    ms_per_image: float


def _evaluate(
    name: str,
    system: System,
    metric: Metric,
    threshold: float,
    shown: Sequence[Image],
) -> Result:
    def measure(a: Any, b: Any) -> float:
        return distance(metric, a, b)

    started = time.perf_counter()
    made = samples(system, shown)
    ms = (time.perf_counter() - started) * 1e3 / len(shown)
    group = photo(GROUP_PHOTO)
    counts = []
    for width in GROUP_WIDTHS:
        factor = width / group.shape[1]
        truth = [(x * factor, y * factor) for x, y in GROUP_FACES]
        counts.append(recall([f.box for f in system(scaled(group, factor))], truth))
    return Result(name, metric, threshold, made, pairs(made, measure), drifts(made, measure), counts, ms)


def _f(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _spread(s: Summary) -> str:
    missed = f" ({s.missing} missed)" if s.missing else ""
    return f"{s.count:>6}{missed:<14} {_f(s.minimum)} / {_f(s.median)} / {_f(s.maximum)}"


def _distance_rows(results: Sequence[Result]) -> tuple[str, ...]:
    rows = [
        f"{'system':<34} {'faces':>7} {'ms/img':>6}  {'genuine pairs':<20} min / median / max"
        f"    {'impostor pairs':<20} min / median / max"
    ]
    for r in results:
        found = sum(s.vector is not None for s in r.seen)
        rows.append(
            f"{r.name:<34} {found:>3}/{len(r.seen):<3} {r.ms_per_image:>6.0f}  "
            f"{_spread(summarise(r.pairs.genuine))}    {_spread(summarise(r.pairs.impostor))}"
        )
    return tuple(rows)


def _extrapolated(one: float, tenth: float) -> float:
    """The distance one more decade down the impostor tail (FAR 0.01%), straight on from the thresholds at
    FAR 1% and 0.1% (distance against log FAR): where a few pairs of people cannot measure, the tail's own
    slope says how far to go."""
    return tenth - (one - tenth)


def _rate_rows(results: Sequence[Result]) -> tuple[str, ...]:
    rows = [
        f"{'system':<34} {'FAR 1%':<14} {'FAR 0.1% (FA, people)':<30} {'FAR 0.01% extrapolated':<24} "
        "at the shipped threshold: TAR, FAR"
    ]
    for r in results:
        p = r.pairs
        one, tenth = (operating_point(p.genuine, p.impostor, far) for far in FARS)
        people = p.identity_pairs_accepted(tenth.rates.threshold)
        low = _extrapolated(one.rates.threshold, tenth.rates.threshold)
        beyond = rates_at(p.genuine, p.impostor, low)
        shipped = rates_at(p.genuine, p.impostor, r.threshold)
        unresolved = "" if tenth.resolved else "*"
        cells = (
            f"{_f(one.rates.threshold)}, {one.rates.tar:.3f}",
            f"{_f(tenth.rates.threshold)}{unresolved}, {tenth.rates.tar:.3f} "
            f"({tenth.rates.false_accepts}, {people} of {p.identity_pairs})",
            f"{_f(low)}, {beyond.tar:.3f} ({beyond.false_accepts})",
            f"{_f(r.threshold)}: {shipped.tar:.3f}, {shipped.far:.2%} ({shipped.false_accepts})",
        )
        rows.append(f"{r.name:<34} {cells[0]:<14} {cells[1]:<30} {cells[2]:<24} {cells[3]}")
    return tuple(rows)


def _group_rows(results: Sequence[Result]) -> tuple[str, ...]:
    header = "".join(f"{f'{w} px wide':>18}" for w in GROUP_WIDTHS)
    rows = [f"{'system':<34}{header}"]
    for r in results:
        cells = "".join(
            f"{f'{g.found}/{g.truth}' + (f' +{g.extra} wrong' if g.extra else ''):>18}" for g in r.group
        )
        rows.append(f"{r.name:<34}{cells}")
    return tuple(rows)


def _drift_rows(results: Sequence[Result]) -> tuple[str, ...]:
    short = [r.name.replace("blazeface_", "bf_").replace("dlib_resnet_v1", "dlib") for r in results]
    short = [s.replace(FACE_RECOGNITION, "face_recog.") for s in short]
    rows = [f"{'augmentation':<13}" + "".join(f"{s:>17}" for s in short)]
    for variant in face_augment.STANDARD:
        cells = []
        for r in results:
            s = summarise(r.moved[variant])
            missed = f" -{s.missing}" if s.missing else ""
            cells.append(f"{_f(s.median)}/{_f(s.maximum)}{missed}")
        rows.append(f"{variant:<13}" + "".join(f"{c:>17}" for c in cells))
    rows.append(f"{'(threshold)':<13}" + "".join(f"{_f(r.threshold):>17}" for r in results))
    return tuple(rows)


def run() -> list[Figure | Table]:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    shown = images()
    results = []
    for detector in get_args(DetectorName):
        for embedder in get_args(EmbedderName):
            spec = EMBEDDERS[embedder][0]
            with pipeline(detector, embedder) as faces:
                system = pipeline_system(faces)
                results.append(
                    _evaluate(f"{detector} + {embedder}", system, spec.metric, spec.threshold, shown)
                )
    results.append(
        _evaluate(FACE_RECOGNITION, face_recognition_system(), Metric.L2, FACE_RECOGNITION_TOLERANCE, shown)
    )
    default = PipelineChoice()
    peer = next(r for r in results if r.name == FACE_RECOGNITION)
    peer_tar = operating_point(peer.pairs.genuine, peer.pairs.impostor, 0.001).rates.tar
    tables: list[Figure | Table] = [
        Table("how few identities", (_identities(peer),)),
        Table(
            "distances: genuine (same person, two photographs), impostor (two people); "
            "missed: a face not found",
            _distance_rows(results),
        ),
        Table(
            "threshold, TAR at each FAR over those pairs (in the system's own distance; in brackets the "
            "impostor pairs accepted and how many pairs of people they come from; *: too few pairs)",
            _rate_rows(results),
        ),
        Table(
            f"detection recall on {GROUP_PHOTO} (6 faces, counted by hand once), scaled to each width "
            "(its faces 26-52 px between the eyes at 1280, 13-26 at 640)",
            _group_rows(results),
        ),
        Table(
            "stability: drift from the clean image's embedding under each augmentation, median/max over the "
            "13 sources (-n: faces missed)",
            _drift_rows(results),
        ),
    ]
    for r in results:
        if r is peer:
            continue
        tar = operating_point(r.pairs.genuine, r.pairs.impostor, 0.001).rates.tar
        mark = " (default)" if r.name == f"{default.detector} + {default.embedder}" else ""
        tables.append(
            Figure(
                f"TAR at FAR 0.1%, {r.name}{mark}",
                tar * 1000,
                FACE_RECOGNITION,
                peer_tar * 1000,
                "1e-3",
                "ratio >= 1",
            )
        )
    return tables
