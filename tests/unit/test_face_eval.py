"""The face evaluation's arithmetic (bench/face_eval.py) on hand-made distances, so that the table
`make bench` prints, and the thresholds set from it, rest on rates computed as they say."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.face_eval import (
    CLEAN,
    Sample,
    drifts,
    operating_point,
    pairs,
    rates_at,
    recall,
    summarise,
)
from models.faces.detect import Box


def gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(a[0] - b[0]))


def sample(identity: str, photo: str, variant: str, value: float | None, source: str | None = None) -> Sample:
    return Sample(identity, photo, source or photo, variant, None if value is None else np.array([value]))


def test_pairs_are_genuine_across_photographs_and_impostor_across_people() -> None:
    samples = [
        sample("ann", "a1", CLEAN, 0.0),
        sample("ann", "a1", "blur", 0.1),  # the same photograph: neither genuine nor impostor
        sample("ann", "a2", CLEAN, 0.3),
        sample("bob", "b1", CLEAN, 1.0),
    ]
    made = pairs(samples, gap)
    assert sorted(made.genuine) == pytest.approx([0.2, 0.3])
    assert sorted(made.impostor) == pytest.approx([0.7, 0.9, 1.0])
    assert made.impostor_identities == [("ann", "bob")] * 3
    assert made.identity_pairs_accepted(0.95) == 1
    assert made.identity_pairs_accepted(0.5) == 0


def test_a_face_not_found_is_an_infinitely_distant_pair() -> None:
    samples = [
        sample("ann", "a1", CLEAN, 0.0),
        sample("ann", "a2", CLEAN, None),
        sample("bob", "b1", CLEAN, 0.5),
    ]
    made = pairs(samples, gap)
    genuine, impostor = made.genuine, made.impostor
    assert genuine == [math.inf]
    assert sorted(impostor) == [0.5, math.inf]
    # so it is a false reject, never a false accept, and it stays in the counts
    rates = rates_at(genuine, impostor, 10.0)
    assert (rates.true_accepts, rates.genuine, rates.false_accepts, rates.impostors) == (0, 1, 1, 2)


def test_drift_is_each_variant_against_its_own_sources_clean_image() -> None:
    samples = [
        sample("ann", "a1", CLEAN, 0.0),
        sample("ann", "a1", "blur", 0.25),
        sample("ann", "a1", CLEAN, 1.0, source="a1 crop"),
        sample("ann", "a1", "blur", 1.5, source="a1 crop"),
        sample("ann", "a1", "dark", None),
    ]
    assert drifts(samples, gap) == {"blur": [0.25, 0.5], "dark": [math.inf]}


def test_a_summary_leaves_missing_faces_out_of_its_figures_and_counts_them() -> None:
    s = summarise([0.4, 0.1, math.inf, 0.2])
    assert (s.count, s.missing, s.minimum, s.median, s.maximum) == (4, 1, 0.1, 0.2, 0.4)
    nothing = summarise([math.inf])
    assert (nothing.count, nothing.missing) == (1, 1)
    assert math.isnan(nothing.median)


def test_rates_accept_a_distance_equal_to_the_threshold() -> None:
    rates = rates_at([0.1, 0.5, 0.6], [0.5, 0.9], 0.5)
    assert (rates.true_accepts, rates.false_accepts) == (2, 1)
    assert rates.tar == pytest.approx(2 / 3)
    assert rates.far == pytest.approx(1 / 2)


def test_the_operating_point_allows_floor_far_times_n_false_accepts() -> None:
    impostor = [float(d) for d in range(1, 201)]  # 1.0 ... 200.0
    genuine = [0.5, 1.5, 2.5, 3.5, 250.0]
    # 1% of 200 impostor pairs: 2 may be accepted (1.0 and 2.0), the third (3.0) may not
    point = operating_point(genuine, impostor, 0.01)
    assert point.resolved
    assert 2.0 <= point.rates.threshold < 3.0
    assert point.rates.false_accepts == 2
    assert point.rates.true_accepts == 3  # 0.5, 1.5, 2.5
    assert point.rates.tar == pytest.approx(3 / 5)
    # 0.1% of 200 is 0.2: not even one false accept can be allowed, so the point is only below the nearest
    strict = operating_point(genuine, impostor, 0.001)
    assert not strict.resolved
    assert strict.rates.false_accepts == 0
    assert strict.rates.threshold < 1.0
    assert strict.rates.true_accepts == 1


def test_the_operating_point_handles_ties_and_missing_faces() -> None:
    # three impostors tied at 0.4: allowing one false accept cannot take any of them
    point = operating_point([0.3, 0.4], [0.4, 0.4, 0.4, *([math.inf] * 97)], 0.01)
    assert point.rates.false_accepts == 0
    assert point.rates.true_accepts == 1
    # floor(0.6 x 2) = 1 false accept allowed: the threshold is just below the second impostor
    loose = operating_point([0.3, 0.59], [0.2, 0.6], 0.6)
    assert 0.59 < loose.rates.threshold < 0.6
    assert (loose.rates.true_accepts, loose.rates.false_accepts) == (2, 1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        operating_point([0.3], [0.2], 0.0)
    with pytest.raises(ValueError, match="no impostor pairs"):
        operating_point([0.3], [], 0.01)


@given(
    st.lists(st.floats(0, 2), min_size=1, max_size=50),
    st.lists(st.floats(0, 2), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.1, 0.01, 0.001]),
)
def test_the_operating_point_is_the_loosest_threshold_within_the_rate(
    genuine: list[float], impostor: list[float], far: float
) -> None:
    point = operating_point(genuine, impostor, far)
    assert point.rates.far <= far
    # any looser threshold (the next impostor distance up) would exceed the rate
    above = [d for d in impostor if d > point.rates.threshold]
    if above:
        assert rates_at(genuine, impostor, min(above)).far > far


def test_recall_takes_each_box_once_for_the_point_inside_it() -> None:
    boxes = [Box(0, 0, 10, 10), Box(8, 0, 10, 10), Box(100, 100, 5, 5)]
    # (10, 5) is inside both of the first two and nearer the second's centre (13, 5) than the first's (5, 5)
    found = recall(boxes, [(10, 5), (2, 2), (50, 50)])
    assert (found.found, found.truth, found.extra) == (2, 3, 1)
    assert recall([Box(0, 0, 10, 10)], [(5, 5), (6, 6)]).found == 1


def test_accepted_impostor_pairs_are_counted_by_pairs_of_people() -> None:
    samples = [
        sample("ann", "a1", CLEAN, 0.0),
        sample("ann", "a1", "blur", 0.05),
        sample("bob", "b1", CLEAN, 0.1),
        sample("cy", "c1", CLEAN, 5.0),
    ]
    made = pairs(samples, gap)
    assert made.identity_pairs == 3
    # ann-bob twice (0.1 and 0.05), ann-cy and bob-cy far: two accepted pairs, one pair of people
    assert made.identity_pairs_accepted(0.2) == 1
    assert rates_at(made.genuine, made.impostor, 0.2).false_accepts == 2
