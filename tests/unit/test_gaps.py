"""Merging runs of sequence numbers and finding what lies between them."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.sync.gaps import merge, missing, runs


def test_runs_touching_or_overlapping_become_one() -> None:
    assert merge([(15, 20), (1, 10), (11, 12), (5, 7), (30, 30)]) == [(1, 12), (15, 20), (30, 30)]
    assert runs([3, 1, 2, 2, 7]) == [(1, 3), (7, 7)]


def test_what_is_missing_starts_at_one() -> None:
    assert missing([(1, 10), (15, 20)]) == [(11, 14)]
    assert missing([(4, 6)]) == [(1, 3)]
    assert missing([(1, 20)]) == []
    assert missing([]) == []


@given(st.sets(st.integers(min_value=1, max_value=200)))
def test_runs_and_gaps_partition_one_to_the_highest(seqs: set[int]) -> None:
    seen = runs(seqs)
    assert {n for first, last in seen for n in range(first, last + 1)} == seqs
    holes = {n for first, last in missing(seen) for n in range(first, last + 1)}
    assert holes == set(range(1, max(seqs, default=0) + 1)) - seqs
    assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(seen))
