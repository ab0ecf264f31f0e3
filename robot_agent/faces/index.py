"""The matcher's nearest-neighbour index of one embedder's enrolled faces, in memory (pure: no files).

Below `EXACT_BELOW` faces it is hnswlib's exact `BFIndex`, which measured faster there (docs/decisions.md,
§38); from there on an HNSW graph. Adding and removing faces is incremental in both. hnswlib knows
faces by integer labels; the index maps them to face ids and users. Distances come out as the embedder
defines them: hnswlib's `l2` gives squared distances (the square root is taken here), its `cosine` gives
1 - cosine similarity, which is SFace's distance.

A removed face leaves no vector behind: hnswlib's `mark_deleted` keeps the vector in the graph (and in
what `to_bytes` writes), so it is first overwritten with zeros; the exact index copies the remaining
vectors into a new one. Not thread-safe: the matcher holds a lock around it.
"""

from __future__ import annotations

import json
import math
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import hnswlib  # type: ignore[import-untyped]  # hnswlib 0.8.0 ships no types
import numpy as np
from numpy.typing import NDArray

from models.faces.embed import Metric
from models.faces.identify import Identification, identify
from robot_agent.errors import FacesError

# From this many faces on, an HNSW graph; below, the exact index (measured: decisions §38).
EXACT_BELOW: Final = 3500
# Candidates asked for first; more until two different users are among them (the margin needs the second).
FIRST_K: Final = 8
FORMAT: Final = 1

Kind = Literal["exact", "hnsw"]
Vectors = NDArray[np.float32]


@dataclass(frozen=True)
class HnswParams:
    """The graph's parameters: M links per node, ef_construction at insertion, ef at search (at least k)."""

    m: int = 16
    ef_construction: int = 200
    ef: int = 64
    seed: int = 100


@dataclass(frozen=True, slots=True)
class Entry:
    face_id: uuid.UUID
    user_id: uuid.UUID


class IndexFormatError(FacesError):
    """Bytes that are not an index this code wrote (the matcher rebuilds it from the database)."""


class FaceIndex:
    """Enrolled faces' embeddings for one metric and dimension (that of the first added, if not given),
    searchable by nearest neighbour."""

    def __init__(
        self,
        metric: Metric,
        dim: int | None = None,
        *,
        exact_below: int = EXACT_BELOW,
        params: HnswParams | None = None,
    ) -> None:
        self.metric = metric
        self.dim = dim
        self.exact_below = exact_below
        self.params = params or HnswParams()
        self._space = "cosine" if metric is Metric.COSINE else "l2"
        self._entries: dict[int, Entry] = {}  # live labels only
        self._labels: dict[uuid.UUID, int] = {}
        self._next_label = 0
        self.kind: Kind = "exact"
        # exact: the vectors in row order, their labels, and the BFIndex built from them
        self._rows: list[int] = []
        self._vectors: Vectors = np.zeros((0, dim or 0), np.float32)
        self._bf: Any = self._new_bf(16) if dim else None
        # hnsw: the graph and how many of its slots hold removed (zeroed) faces
        self._graph: Any = None
        self._removed = 0

    def __len__(self) -> int:
        return len(self._entries)

    def face_ids(self) -> frozenset[uuid.UUID]:
        return frozenset(self._labels)

    def held(self, face_id: uuid.UUID) -> Vectors:
        """A face's vector as the index holds it (hnswlib normalises cosine vectors again): what a copy of
        it in a file would look like."""
        label = self._labels[face_id]
        if self.kind == "exact":
            return np.array(self._vectors[self._rows.index(label)], np.float32)
        return np.asarray(self._graph.get_items([label]), np.float32).reshape(-1)

    # -- changes ----------------------------------------------------------------------------------------

    def add(self, entries: Sequence[Entry], vectors: Vectors) -> None:
        """Add faces (their ids new to the index) with their embeddings, one row each."""
        if self.dim is None and len(entries):
            self.dim = int(np.shape(vectors)[-1])
            self._vectors, self._bf = np.zeros((0, self.dim), np.float32), self._new_bf(16)
        vectors = self._checked(vectors, len(entries))
        if len({entry.face_id for entry in entries} - self._labels.keys()) != len(entries):
            raise FacesError("a face added to the index is in it already, or twice")
        if not entries:
            return
        labels = list(range(self._next_label, self._next_label + len(entries)))
        self._next_label += len(entries)
        if self.kind == "exact" and len(self) + len(entries) >= self.exact_below:
            self._to_graph()
        if self.kind == "exact":
            self._add_exact(labels, vectors)
        else:
            self._add_graph(labels, vectors)
        for label, entry in zip(labels, entries, strict=True):
            self._entries[label] = entry
            self._labels[entry.face_id] = label

    def remove(self, face_ids: Sequence[uuid.UUID]) -> int:
        """Remove these faces (ids not in the index are ignored), their vectors overwritten; how many."""
        labels = [self._labels.pop(face_id) for face_id in set(face_ids) if face_id in self._labels]
        if not labels:
            return 0
        for label in labels:
            del self._entries[label]
        if self.kind == "exact":
            self._remove_exact(labels)
        else:
            self._remove_graph(labels)
        return len(labels)

    # -- search -----------------------------------------------------------------------------------------

    def candidates(self, vector: NDArray[np.floating[Any]]) -> list[tuple[uuid.UUID, float]]:
        """The nearest faces as (user, distance), nearest first: at least two different users among them
        when the index holds two; every face when it holds fewer than FIRST_K."""
        live = len(self)
        if not live:
            return []
        query = self._checked(np.asarray(vector, np.float32).reshape(1, -1), 1)
        k = min(FIRST_K, live)
        while k:
            labels, distances = self._knn(query, k)
            found = [
                (self._entries[int(label)].user_id, self._distance(float(dist)))
                for label, dist in zip(labels, distances, strict=True)
            ]
            if k >= live or len({user for user, _ in found}) >= 2:
                return found
            k = min(live, k * 4)
        return []

    def identify(
        self, vector: NDArray[np.floating[Any]], threshold: float, min_margin: float = 0.0
    ) -> Identification[uuid.UUID]:
        """Who `vector` is among the enrolled faces (models.faces.identify): a user only for a match within
        `threshold` and at least `min_margin` ahead of the next different user."""
        return identify(self.candidates(vector), threshold, min_margin)

    def _distance(self, raw: float) -> float:
        # hnswlib's float32 arithmetic can dip a hair below zero for a face against itself.
        return math.sqrt(max(raw, 0.0)) if self.metric is Metric.L2 else max(raw, 0.0)

    def _knn(self, query: Vectors, k: int) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
        if self.kind == "exact":
            labels, distances = self._bf.knn_query(query, k=k, num_threads=1)
            return labels[0], distances[0]
        self._graph.set_ef(max(self.params.ef, k))
        try:
            labels, distances = self._graph.knn_query(query, k=k, num_threads=1)
        except RuntimeError:
            # Removed faces still route the search; with many of them ef may find fewer than k: widen it.
            self._graph.set_ef(max(self._graph.element_count, k))
            labels, distances = self._graph.knn_query(query, k=k, num_threads=1)
        return labels[0], distances[0]

    # -- the exact index --------------------------------------------------------------------------------

    def _new_bf(self, capacity: int) -> Any:
        bf = hnswlib.BFIndex(space=self._space, dim=self._width())
        bf.init_index(max_elements=max(capacity, 16))
        return bf

    def _add_exact(self, labels: list[int], vectors: Vectors) -> None:
        self._rows.extend(labels)
        self._vectors = np.concatenate([self._vectors, vectors])
        if len(self._rows) > self._bf.get_max_elements():
            self._scrub_bf(self._rows[: -len(labels)])
            self._bf = self._new_bf(2 * len(self._rows))
            self._bf.add_items(self._vectors, np.asarray(self._rows, np.uint64))
        else:
            self._bf.add_items(vectors, np.asarray(labels, np.uint64))

    def _remove_exact(self, labels: list[int]) -> None:
        gone = set(labels)
        keep = [i for i, label in enumerate(self._rows) if label not in gone]
        vectors = self._vectors[keep]
        # BFIndex.delete_vector reads a map entry it has just erased (hnswlib 0.8.0 bruteforce.h): instead,
        # overwrite the removed faces' slots and copy the rest into a new index.
        self._scrub_bf(self._rows)
        self._vectors.fill(0)
        self._rows = [self._rows[i] for i in keep]
        self._vectors = vectors
        self._bf = self._new_bf(2 * len(self._rows))
        if self._rows:
            self._bf.add_items(self._vectors, np.asarray(self._rows, np.uint64))

    def _scrub_bf(self, labels: list[int]) -> None:
        """Overwrite the given labels' vectors in the current BFIndex with zeros (it is about to go)."""
        if labels:
            self._bf.add_items(
                np.zeros((len(labels), self._width()), np.float32), np.asarray(labels, np.uint64)
            )

    # -- the HNSW graph ---------------------------------------------------------------------------------

    def _new_graph(self, capacity: int) -> Any:
        graph = hnswlib.Index(space=self._space, dim=self._width())
        graph.init_index(
            max_elements=max(capacity, 16),
            M=self.params.m,
            ef_construction=self.params.ef_construction,
            random_seed=self.params.seed,
            allow_replace_deleted=True,
        )
        graph.set_ef(self.params.ef)
        return graph

    def _to_graph(self) -> None:
        graph = self._new_graph(2 * max(len(self._rows), self.exact_below))
        if self._rows:
            graph.add_items(self._vectors, np.asarray(self._rows, np.uint64))
        self._scrub_bf(self._rows)
        self._vectors.fill(0)
        self._rows, self._vectors, self._bf = [], np.zeros((0, self._width()), np.float32), self._new_bf(16)
        self._graph, self._removed, self.kind = graph, 0, "hnsw"

    def _add_graph(self, labels: list[int], vectors: Vectors) -> None:
        graph = self._graph
        needed = graph.element_count + max(0, len(labels) - self._removed)
        if needed > graph.get_max_elements():
            graph.resize_index(max(needed, 2 * graph.get_max_elements()))
        # replace_deleted: a removed face's slot takes the new one (its zeroed vector overwritten).
        graph.add_items(vectors, np.asarray(labels, np.uint64), replace_deleted=True)
        self._removed = max(0, self._removed - len(labels))

    def _remove_graph(self, labels: list[int]) -> None:
        # Adding a label that is there updates its vector in place: zeros, then marked deleted.
        ids = np.asarray(labels, np.uint64)
        self._graph.add_items(np.zeros((len(labels), self._width()), np.float32), ids)
        for label in labels:
            self._graph.mark_deleted(int(label))
        self._removed += len(labels)
        if self._removed > max(len(self), 64):
            self._compact()

    def _compact(self) -> None:
        """A new graph of the live faces only, when removed ones outnumber them (they still route search)."""
        labels = list(self._entries)
        vectors = np.asarray(self._graph.get_items(labels), np.float32).reshape(len(labels), self._width())
        graph = self._new_graph(2 * max(len(labels), self.exact_below))
        if labels:
            graph.add_items(vectors, np.asarray(labels, np.uint64))
        self._graph, self._removed = graph, 0

    # -- bytes ------------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole index as bytes (vectors included: seal them before they leave memory)."""
        meta: dict[str, Any] = {
            "format": FORMAT,
            "metric": self.metric.value,
            "dim": self.dim,
            "kind": self.kind,
            "next_label": self._next_label,
            "faces": [[label, e.face_id.hex, e.user_id.hex] for label, e in self._entries.items()],
        }
        arrays: dict[str, NDArray[Any]] = {}
        if self.kind == "exact":
            meta["rows"] = self._rows
            arrays["vectors"] = self._vectors
        else:
            (state,) = self._graph.__getstate__()
            meta["removed"] = self._removed
            meta["state"] = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
            arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
        meta["arrays"] = [[name, array.dtype.str, list(array.shape)] for name, array in arrays.items()]
        head = json.dumps(meta, separators=(",", ":")).encode()
        blobs = [np.ascontiguousarray(array).tobytes() for array in arrays.values()]
        return b"".join([struct.pack("<I", len(head)), head, *blobs])

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        metric: Metric,
        dim: int | None = None,
        *,
        exact_below: int = EXACT_BELOW,
        params: HnswParams | None = None,
    ) -> FaceIndex:
        """An index `to_bytes` wrote for this metric (and dimension, if given); IndexFormatError otherwise."""
        try:
            return cls._read(data, metric, dim, exact_below, params)
        except IndexFormatError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError, struct.error) as err:
            raise IndexFormatError(f"not an index this version reads: {type(err).__name__}: {err}") from err

    @classmethod
    def _read(
        cls, data: bytes, metric: Metric, dim: int | None, exact_below: int, params: HnswParams | None
    ) -> FaceIndex:
        (size,) = struct.unpack_from("<I", data)
        meta = json.loads(data[4 : 4 + size])
        if (meta["format"], meta["metric"]) != (FORMAT, metric.value) or dim not in (None, meta["dim"]):
            raise IndexFormatError(
                f"written as format {meta['format']} for {meta['metric']} vectors of {meta['dim']}, "
                f"wanted format {FORMAT} for {metric.value} vectors of {dim or 'any size'}"
            )
        dim = meta["dim"]
        arrays: dict[str, NDArray[Any]] = {}
        offset = 4 + size
        for name, dtype, shape in meta["arrays"]:
            length = int(np.dtype(dtype).itemsize * math.prod(shape))
            if offset + length > len(data):
                raise IndexFormatError(f"truncated: {name} ends past the data")
            arrays[name] = np.frombuffer(data, dtype, count=math.prod(shape), offset=offset).reshape(shape)
            offset += length
        if offset != len(data):
            raise IndexFormatError(f"{len(data) - offset} bytes after the arrays")
        index = cls(metric, dim, exact_below=exact_below, params=params)
        index._next_label = int(meta["next_label"])
        for label, face_hex, user_hex in meta["faces"]:
            entry = Entry(uuid.UUID(hex=face_hex), uuid.UUID(hex=user_hex))
            index._entries[int(label)] = entry
            index._labels[entry.face_id] = int(label)
        if len(index._labels) != len(index._entries):
            raise IndexFormatError("a face is listed twice")
        if meta["kind"] == "exact":
            rows = [int(label) for label in meta["rows"]]
            vectors = np.array(arrays["vectors"], np.float32).reshape(len(rows), dim or 0)
            if sorted(rows) != sorted(index._entries):
                raise IndexFormatError("its vectors are not those of its faces")
            index._rows, index._vectors = rows, vectors
            if rows:
                index._bf = index._new_bf(2 * len(rows))
                index._bf.add_items(vectors, np.asarray(rows, np.uint64))
        elif meta["kind"] == "hnsw":
            state = {**meta["state"], **{k: np.array(v) for k, v in arrays.items()}}
            _check_graph_state(state)
            graph = hnswlib.Index.__new__(hnswlib.Index)
            graph.__setstate__((state,))
            if (graph.space, graph.dim) != (index._space, dim):
                raise IndexFormatError(f"a graph of {graph.space} vectors of {graph.dim}")
            if not set(index._entries) <= set(graph.get_ids_list()):
                raise IndexFormatError("its graph lacks some of its faces")
            index._graph, index._removed, index.kind = graph, int(meta["removed"]), "hnsw"
        else:
            raise IndexFormatError(f"unknown kind {meta['kind']!r}")
        if any(label >= index._next_label for label in index._entries):
            raise IndexFormatError("a label beyond the next one")
        return index

    def _width(self) -> int:
        if self.dim is None:
            raise FacesError("the index has no faces yet, so no dimension")
        return self.dim

    def _checked(self, vectors: NDArray[np.floating[Any]], rows: int) -> Vectors:
        array = np.asarray(vectors, np.float32)
        if self.dim is None:  # nothing added yet: any width will do for no rows
            return np.zeros((0, 0), np.float32) if rows == 0 else array
        if array.shape != (rows, self.dim):
            raise FacesError(
                f"expected {rows} embeddings of {self.dim} numbers, got an array of {array.shape}"
            )
        if not np.isfinite(array).all():
            raise FacesError("an embedding holds a number that is not finite")
        if self.metric is Metric.COSINE:
            # hnswlib's BFIndex normalises what it stores but not a query (0.8.0): do both here.
            array = array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(array, np.float32)


def _check_graph_state(state: dict[str, Any]) -> None:
    """The array sizes hnswlib's __setstate__ copies without checking (a wrong one would overrun memory)."""
    count, capacity = int(state["cur_element_count"]), int(state["max_elements"])
    levels = state["element_levels"]
    expected = {
        "label_lookup_external": count,
        "label_lookup_internal": count,
        "element_levels": capacity,
        "data_level0": count * int(state["size_data_per_element"]),
        "link_lists": int(np.clip(levels, 0, None).sum()) * int(state["size_links_per_element"]),
    }
    if not 0 <= count <= capacity:
        raise IndexFormatError(f"{count} elements in a graph of {capacity}")
    for name, size in expected.items():
        if state[name].size != size:
            raise IndexFormatError(f"{name} holds {state[name].size} values, the graph needs {size}")
