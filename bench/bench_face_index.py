"""The matcher's HNSW graph vs hnswlib's exact BFIndex, queries per second at each size: where the graph wins.

`robot_agent/faces/index.py` uses the exact index below EXACT_BELOW faces (3500) and the graph from there
on; this measures the crossover that limit rests on (decisions §38). Both answer through the
matcher's own `candidates` (8 nearest, more until two users), one thread, on identity-clustered synthetic
128-d unit vectors (three faces per person, the spread of SFace's genuine pairs), queries near enrolled
people. A ratio above 1 means the graph answers more queries per second than the exact index.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
from numpy.typing import NDArray

from bench.report import Figure
from models.faces.embed import Metric
from robot_agent.faces.index import EXACT_BELOW, Entry, FaceIndex

SIZES = (256, 1024, 2048, 3072, EXACT_BELOW, 4096, 8192)
QUERIES = 300
ROUNDS = 5


def clustered(
    count: int, rng: np.random.Generator
) -> tuple[list[Entry], NDArray[np.float32], NDArray[np.float32]]:
    people = max(1, count // 3)
    centres = rng.standard_normal((people, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[np.arange(count) % people] + 0.045 * rng.standard_normal((count, 128)).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    users = [uuid.UUID(int=i + 1) for i in range(people)]
    entries = [Entry(uuid.uuid4(), users[i % people]) for i in range(count)]
    queries = centres[rng.integers(0, people, QUERIES)] + 0.045 * rng.standard_normal((QUERIES, 128)).astype(
        np.float32
    )
    return entries, vectors.astype(np.float32), queries.astype(np.float32)


def _rates(indexes: tuple[FaceIndex, FaceIndex], queries: NDArray[np.float32]) -> tuple[float, float]:
    """Queries per second of each index, best of alternating rounds."""
    best = [0.0, 0.0]
    for _ in range(ROUNDS):
        for i, index in enumerate(indexes):
            started = time.perf_counter()
            for query in queries:
                index.candidates(query)
            best[i] = max(best[i], len(queries) / (time.perf_counter() - started))
    return best[0], best[1]


def run() -> list[Figure]:
    rng = np.random.default_rng(15)
    figures = []
    for size in SIZES:
        entries, vectors, queries = clustered(size, rng)
        exact = FaceIndex(Metric.COSINE, 128, exact_below=10**9)
        graph = FaceIndex(Metric.COSINE, 128, exact_below=0)
        exact.add(entries, vectors)
        graph.add(entries, vectors)
        exact_rate, graph_rate = _rates((exact, graph), queries)
        chosen = "graph" if size >= EXACT_BELOW else "exact"
        figures.append(
            Figure(
                f"face index, {size:,} faces: HNSW queries/s",
                graph_rate,
                "exact",
                exact_rate,
                "q/s",
                f"> 1 from {EXACT_BELOW:,} on (uses {chosen})",
            )
        )
    return figures
