"""The matcher's index (robot_agent/faces/index.py) on synthetic embeddings: the exact and the HNSW index
answer as numpy does, distances are the embedder's (square roots of hnswlib's L2), the margin is to another
user, removed faces leave no vector behind, and the bytes it writes read back (anything else is refused)."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from models.faces.embed import Metric, distances
from models.faces.identify import Verdict
from robot_agent.errors import FacesError
from robot_agent.faces.index import Entry, FaceIndex, IndexFormatError

DIM = 128
KINDS = {"exact": 10**6, "hnsw": 0}  # exact_below for each kind


def people(
    count: int, per: int = 3, seed: int = 0, metric: Metric = Metric.COSINE
) -> tuple[list[Entry], NDArray[np.float32]]:
    """`per` faces each of `count` people: points scattered around a centre per person."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((count, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.repeat(centres, per, axis=0) + 0.04 * rng.standard_normal((count * per, DIM)).astype(
        np.float32
    )
    if metric is Metric.COSINE:
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    users = [uuid.UUID(int=i + 1) for i in range(count)]
    return [Entry(uuid.uuid4(), user) for user in users for _ in range(per)], vectors.astype(np.float32)


def brute_force(
    metric: Metric, entries: list[Entry], vectors: NDArray[np.float32], query: NDArray[np.float32]
) -> list[tuple[uuid.UUID, float]]:
    found = distances(metric, query, vectors)
    return sorted(((entries[i].user_id, float(found[i])) for i in range(len(entries))), key=lambda c: c[1])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("metric", [Metric.COSINE, Metric.L2])
def test_the_nearest_faces_are_numpys_with_the_embedders_distances(kind: str, metric: Metric) -> None:
    entries, vectors = people(40, metric=metric)
    index = FaceIndex(metric, DIM, exact_below=KINDS[kind])
    index.add(entries, vectors)
    assert (index.kind, len(index)) == (kind, 120)
    rng = np.random.default_rng(1)
    for query in vectors[::7] + 0.02 * rng.standard_normal((18, DIM)).astype(np.float32):
        found = index.candidates(query)
        expected = brute_force(metric, entries, vectors, query)[: len(found)]
        assert [user for user, _ in found] == [user for user, _ in expected]
        # hnswlib's l2 is squared: the index takes the root, so these are dlib's 0.6-threshold distances.
        assert [d for _, d in found] == pytest.approx([d for _, d in expected], abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_a_user_with_many_faces_still_gets_a_margin_to_the_next_user(kind: str) -> None:
    entries, vectors = people(2, per=30)  # 30 faces each: the first 8 candidates are all one user's
    index = FaceIndex(Metric.COSINE, DIM, exact_below=KINDS[kind])
    index.add(entries, vectors)
    found = index.candidates(vectors[0])
    assert len({user for user, _ in found}) == 2
    who = index.identify(vectors[0], threshold=0.5)
    nearest_other = brute_force(Metric.COSINE, entries[30:], vectors[30:], vectors[0])[0][1]
    assert who.verdict is Verdict.MATCH
    assert who.identity == entries[0].user_id
    assert who.margin == pytest.approx(nearest_other - who.distance, abs=1e-5)


def test_an_unknown_face_names_no_one() -> None:
    entries, vectors = people(10)
    index = FaceIndex(Metric.COSINE, DIM)
    index.add(entries, vectors)
    stranger = np.random.default_rng(9).standard_normal(DIM).astype(np.float32)
    who = index.identify(stranger / np.linalg.norm(stranger), threshold=0.637)
    assert (who.verdict, who.identity) == (Verdict.TOO_FAR, None)
    assert who.distance > 0.637
    # Two people equally near: ambiguous with a margin asked for, and again nobody named.
    twins = [Entry(uuid.uuid4(), uuid.uuid4()), Entry(uuid.uuid4(), uuid.uuid4())]
    index.add(twins, np.stack([vectors[0], vectors[0]]))
    who = index.identify(vectors[0], threshold=0.637, min_margin=0.05)
    assert (who.verdict, who.identity) == (Verdict.AMBIGUOUS, None)


def test_an_empty_index_has_no_candidates() -> None:
    index = FaceIndex(Metric.L2)
    who = index.identify(np.ones(DIM, np.float32), threshold=0.6)
    assert (who.verdict, who.identity, who.distance) == (Verdict.NO_CANDIDATES, None, math.inf)


@pytest.mark.parametrize("kind", KINDS)
def test_removed_faces_are_never_found_and_their_vectors_are_gone(kind: str) -> None:
    entries, vectors = people(20)
    index = FaceIndex(Metric.L2, DIM, exact_below=KINDS[kind])
    index.add(entries, vectors)
    gone = entries[3:6]  # every face of the second person
    before = index.to_bytes()
    assert all(vectors[i].tobytes() in before for i in range(3, 6))  # what the check below looks for
    assert index.remove([entry.face_id for entry in gone] + [uuid.uuid4()]) == 3
    assert len(index) == 57
    assert index.face_ids() == {entry.face_id for entry in entries} - {e.face_id for e in gone}
    assert gone[0].user_id not in {user for user, _ in index.candidates(vectors[4])}
    after = index.to_bytes()
    for i in range(3, 6):
        assert vectors[i].tobytes()[:16] not in after
    # Their slots take new faces (HNSW replaces removed ones), and the rest still answer.
    newcomers, fresh = people(2, seed=5)
    index.add(newcomers, fresh)
    assert index.identify(fresh[0], 0.6).identity == newcomers[0].user_id
    assert index.identify(vectors[0], 0.6).identity == entries[0].user_id


def test_the_exact_index_becomes_a_graph_at_its_limit() -> None:
    entries, vectors = people(30)
    index = FaceIndex(Metric.COSINE, DIM, exact_below=60)
    index.add(entries[:45], vectors[:45])
    kinds = [index.kind]
    index.add(entries[45:], vectors[45:])
    kinds.append(index.kind)
    assert kinds == ["exact", "hnsw"]
    assert all(index.identify(vectors[i], 0.6).identity == entries[i].user_id for i in range(0, 90, 5))


def test_a_graph_with_more_removed_faces_than_live_ones_is_compacted() -> None:
    entries, vectors = people(100)
    index = FaceIndex(Metric.COSINE, DIM, exact_below=0)
    index.add(entries, vectors)
    index.remove([entry.face_id for entry in entries[:240]])
    assert index._removed == 0  # compacted: a new graph of the 60 left
    assert vectors[0].tobytes()[:16] not in index.to_bytes()
    assert all(index.identify(vectors[i], 0.6).identity == entries[i].user_id for i in range(240, 300, 7))


@pytest.mark.parametrize("kind", KINDS)
def test_an_index_reads_back_from_its_bytes_and_keeps_working(kind: str) -> None:
    entries, vectors = people(25)
    index = FaceIndex(Metric.COSINE, DIM, exact_below=KINDS[kind])
    index.add(entries, vectors)
    index.remove([entries[0].face_id])
    again = FaceIndex.from_bytes(index.to_bytes(), Metric.COSINE, DIM, exact_below=KINDS[kind])
    assert (again.kind, again.face_ids()) == (kind, index.face_ids())
    for query in vectors[1::4]:
        assert again.candidates(query) == index.candidates(query)
    more, fresh = people(1, seed=3)
    again.add(more, fresh)
    again.remove([entries[1].face_id])
    assert again.identify(fresh[1], 0.6).identity == more[0].user_id
    assert entries[1].face_id not in again.face_ids()
    assert FaceIndex.from_bytes(FaceIndex(Metric.L2).to_bytes(), Metric.L2).face_ids() == frozenset()


@pytest.mark.parametrize("kind", KINDS)
def test_bytes_that_are_not_such_an_index_are_refused(kind: str) -> None:
    entries, vectors = people(5)
    index = FaceIndex(Metric.COSINE, DIM, exact_below=KINDS[kind])
    index.add(entries, vectors)
    data = index.to_bytes()
    with pytest.raises(IndexFormatError, match="wanted format 1 for l2 vectors of 128"):
        FaceIndex.from_bytes(data, Metric.L2, DIM)
    with pytest.raises(IndexFormatError, match="for cosine vectors of 64"):
        FaceIndex.from_bytes(data, Metric.COSINE, 64)
    for broken in (data[:-1], data + b"\x00", data[:3], b"", b"\x05\x00\x00\x00{}", b"\xff" * 40):
        with pytest.raises(IndexFormatError):
            FaceIndex.from_bytes(broken, Metric.COSINE, DIM)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_sequence_of_adds_and_removes_answers_as_numpy(data: st.DataObject) -> None:
    metric = data.draw(st.sampled_from([Metric.COSINE, Metric.L2]))
    index = FaceIndex(metric, DIM, exact_below=data.draw(st.sampled_from([0, 12, 10**6])))
    entries, vectors = people(15, per=2, seed=data.draw(st.integers(0, 1000)), metric=metric)
    held: dict[int, bool] = {}
    for _ in range(data.draw(st.integers(1, 8))):
        if data.draw(st.booleans()):
            new = [i for i in range(30) if i not in held][: data.draw(st.integers(1, 6))]
            index.add([entries[i] for i in new], vectors[new])
            held |= dict.fromkeys(new, True)
        elif held:
            gone = data.draw(st.lists(st.sampled_from(sorted(held)), max_size=4, unique=True))
            index.remove([entries[i].face_id for i in gone])
            for i in gone:
                del held[i]
    live = sorted(held)
    assert index.face_ids() == {entries[i].face_id for i in live}
    query = vectors[data.draw(st.integers(0, 29))]
    found = index.candidates(query)
    if not live:
        assert found == []
        return
    expected = brute_force(metric, [entries[i] for i in live], vectors[live], query)
    assert found[0][0] == expected[0][0]
    assert found[0][1] == pytest.approx(expected[0][1], abs=1e-5)


def test_embeddings_of_the_wrong_shape_or_not_finite_are_refused() -> None:
    entries, vectors = people(1)
    index = FaceIndex(Metric.COSINE, DIM)
    with pytest.raises(FacesError, match=r"expected 3 embeddings of 128 numbers, got an array of \(3, 64\)"):
        index.add(entries, vectors[:, :64])
    vectors[1, 5] = np.nan
    with pytest.raises(FacesError, match="not finite"):
        index.add(entries, vectors)
    index.add(entries[:1], vectors[:1])
    with pytest.raises(FacesError, match="in it already"):
        index.add(entries[:1], vectors[:1])
