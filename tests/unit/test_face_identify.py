"""Identification from (identity, distance) candidates: the nearest identity within the threshold, its
margin to the next different identity, or unknown; an unknown face never names anyone."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.faces.errors import FacesError
from models.faces.identify import Identification, Verdict, identify


def test_the_nearest_identity_within_the_threshold_is_named_with_its_margin() -> None:
    found = identify([("ann", 0.30), ("bob", 0.55), ("cy", 0.90)], threshold=0.6)
    assert (found.verdict, found.identity) == (Verdict.MATCH, "ann")
    assert found.distance == 0.30
    assert found.margin == pytest.approx(0.25)


def test_the_margin_is_to_the_second_best_different_identity() -> None:
    # Ann enrolled three photos: her other embeddings are not a rival.
    found = identify([("ann", 0.30), ("ann", 0.32), ("ann", 0.35), ("bob", 0.70)], threshold=0.6)
    assert found.identity == "ann"
    assert found.margin == pytest.approx(0.40)


def test_an_identity_counts_at_its_nearest_embedding() -> None:
    found = identify([("bob", 0.50), ("ann", 0.45), ("bob", 0.20)], threshold=0.6)
    assert found.identity == "bob"
    assert found.distance == 0.20
    assert found.margin == pytest.approx(0.25)


def test_a_face_beyond_the_threshold_is_unknown_and_names_nobody() -> None:
    found = identify([("ann", 0.61), ("bob", 0.9)], threshold=0.6)
    assert found.verdict is Verdict.TOO_FAR
    assert found.identity is None
    assert found.distance == 0.61  # a distance names no one
    assert found.margin == pytest.approx(0.29)


def test_exactly_at_the_threshold_is_a_match() -> None:
    assert identify([(7, 0.6)], threshold=0.6).identity == 7


def test_a_single_identity_has_an_infinite_margin() -> None:
    found = identify([(42, 0.1)], threshold=0.6)
    assert found.identity == 42
    assert found.margin == math.inf


def test_two_identities_nearly_as_near_are_ambiguous_when_a_margin_is_asked() -> None:
    candidates = [("ann", 0.30), ("bob", 0.33)]
    assert identify(candidates, threshold=0.6).identity == "ann"
    found = identify(candidates, threshold=0.6, min_margin=0.05)
    assert (found.verdict, found.identity) == (Verdict.AMBIGUOUS, None)
    assert found.margin == pytest.approx(0.03)


def test_no_candidates_is_unknown() -> None:
    found: Identification[str] = identify([], threshold=0.6)
    assert (found.verdict, found.identity, found.distance, found.margin) == (
        Verdict.NO_CANDIDATES,
        None,
        math.inf,
        math.inf,
    )


@pytest.mark.parametrize("bad", [math.nan, -0.1])
def test_a_distance_that_is_not_one_is_an_error(bad: float) -> None:
    with pytest.raises(FacesError, match="distances are numbers >= 0"):
        identify([("ann", 0.2), ("bob", bad)], threshold=0.6)


@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.floats(0, 2)), max_size=30),
    st.floats(0, 2),
    st.floats(0, 0.5),
)
def test_a_named_identity_is_always_the_nearest_and_within_bounds(
    candidates: list[tuple[str, float]], threshold: float, min_margin: float
) -> None:
    found = identify(candidates, threshold, min_margin)
    if found.identity is None:
        assert found.verdict is not Verdict.MATCH
        return
    nearest = min(dist for _, dist in candidates)
    assert found.distance == nearest <= threshold
    assert min(dist for who, dist in candidates if who == found.identity) == nearest
    assert found.margin >= min_margin
    others = [dist for who, dist in candidates if who != found.identity]
    assert found.margin == (min(others) - nearest if others else math.inf)
