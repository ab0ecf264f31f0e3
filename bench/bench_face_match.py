"""Face matching: hnswlib (models/faces/index_params.py) against numpy brute force, on enrolled embeddings.

Embeddings are synthetic and clustered by identity, their spread taken from real faces in the same run: the
default detector (YuNet) with each embedder over the evaluation's 169 images (bench/face_set.py) gives the
median genuine and impostor distances, and the model below reproduces both medians. Per identity a centre,
`a m + b u` (m shared by all faces, u a random unit direction: identities spread over every direction,
the hard case for a graph index), and each embedding is the centre plus Gaussian noise of s per
dimension; an enrolled passenger has PER_IDENTITY embeddings, a query is a fresh one of an enrolled
identity. SFace's are unit length (cosine, hnswlib space "cosine"); dlib's are not (L2, space "l2", whose
distances are squared). Sizes: 1,000 (a train's passengers) and the issue's 10,000 for both embedders,
100,000 for the default one only (its build takes a minute or more here).

Per query: hnswlib on one thread; numpy as installed (its BLAS uses both cores, and swings several-fold
with the machine's load); hnswlib.BFIndex, exact on one thread, for a steadier reference. Queries alternate
the sides so this shared machine's load falls on all alike. recall@1: the index's nearest is the exact
nearest. Strangers: faces of people not enrolled, and the share of them whose nearest enrolled embedding is
within the embedder's threshold, which on a robot would name someone; the model's tails are Gaussian by
construction and only its medians were fitted, so that share is an indication, not a measurement.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import cv2
import hnswlib  # type: ignore[import-untyped]  # hnswlib 0.8.0 ships no type information
import numpy as np
from numpy.typing import NDArray

from bench.face_eval import pairs
from bench.face_set import images, pipeline, pipeline_system, samples
from bench.report import Figure, Table
from models.faces.choice import DEFAULT_EMBEDDER, EMBEDDERS, EmbedderName, PipelineChoice
from models.faces.embed import Metric, distance
from models.faces.index_params import EF_CONSTRUCTION, EF_SEARCH, SPACES, M

DIM = 128
PER_IDENTITY = 2
QUERIES = 1000
STRANGERS = 300  # faces of people not enrolled
TIMED = 300  # of the queries, timed on every side (numpy at 100,000 takes ~5-10 ms each)
EF_SWEEP = (64, 128, EF_SEARCH, 256)
# A train's passengers, the two sizes; the largest for the default embedder's metric only.
SIZES = (1_000, 10_000, 100_000)
LARGEST = SIZES[-1]
BUILD_THREADS = 2
TARGET = "ratio <= 0.05"  # the ">= 20x faster at 100,000 with recall@1 >= 0.99"
SEED = 20261202

Vectors = NDArray[np.float32]


@dataclass(frozen=True)
class Spread:
    """Real distances one embedder gives: genuine and impostor medians, and its vectors' mean length."""

    metric: Metric
    genuine: float
    impostor: float
    norm: float


def _real_spread(embedder: EmbedderName) -> Spread:
    spec = EMBEDDERS[embedder][0]
    with pipeline(PipelineChoice().detector, embedder) as faces:
        found = [s for s in samples(pipeline_system(faces), images()) if s.vector is not None]

    def measure(a: Any, b: Any) -> float:
        return distance(spec.metric, a, b)

    made = pairs(found, measure)
    norm = float(np.mean([np.linalg.norm(s.vector) for s in found if s.vector is not None]))
    return Spread(spec.metric, float(np.median(made.genuine)), float(np.median(made.impostor)), norm)


class Synthetic:
    """Identity-clustered embeddings that reproduce a Spread's medians (see the module's docstring)."""

    def __init__(self, spread: Spread, rng: np.random.Generator) -> None:
        self.spread, self.rng = spread, rng
        self.shared = self._unit(rng.standard_normal(DIM))
        if spread.metric is Metric.COSINE:
            # Unit vectors: cosine distance is 1 - (a^2 + b^2 u.u') / (a^2 + b^2 + d s^2) with the total 1.
            self.a = math.sqrt(1 - spread.impostor)
            self.b = math.sqrt(spread.impostor - spread.genuine)
            self.s = math.sqrt(spread.genuine / DIM)
        else:
            # L2: genuine^2 = 2 d s^2, impostor^2 = 2 b^2 + genuine^2; a sets the vectors' length.
            self.s = spread.genuine / math.sqrt(2 * DIM)
            self.b = math.sqrt((spread.impostor**2 - spread.genuine**2) / 2)
            self.a = math.sqrt(max(spread.norm**2 - self.b**2 - DIM * self.s**2, 0.0))

    @staticmethod
    def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(v / np.linalg.norm(v, axis=-1, keepdims=True), np.float64)

    def centres(self, count: int) -> NDArray[np.float64]:
        return self.a * self.shared + self.b * self._unit(self.rng.standard_normal((count, DIM)))

    def embeddings(self, centres: NDArray[np.float64]) -> Vectors:
        x = centres + self.rng.normal(0.0, self.s, centres.shape)
        if self.spread.metric is Metric.COSINE:
            x = self._unit(x)
        return np.ascontiguousarray(x, np.float32)


def _medians(data: Vectors, metric: Metric) -> tuple[float, float]:
    """Median genuine (embeddings 0 and 1 of an identity) and impostor (two identities) distances."""
    first, second, other = (
        data[0:2000:PER_IDENTITY],
        data[1:2001:PER_IDENTITY],
        data[PER_IDENTITY:2002:PER_IDENTITY],
    )
    n = min(len(first), len(second), len(other))

    def d(x: Vectors, y: Vectors) -> NDArray[np.float64]:
        return np.asarray([distance(metric, p, q) for p, q in zip(x[:n], y[:n], strict=True)])

    return float(np.median(d(first, second))), float(np.median(d(first, other)))


class BruteForce:
    """Numpy's exact nearest neighbour: one query as the matcher would ask, or many at once."""

    def __init__(self, data: Vectors, metric: Metric) -> None:
        self.data, self.metric = data, metric
        self.squares = np.einsum("ij,ij->i", data, data)

    def _scores(self, queries: Vectors) -> NDArray[np.float32]:
        """Smaller is nearer: -dot for unit vectors, |x|^2 - 2 x.q for L2 (|q|^2 is the same for all x)."""
        dots = queries @ self.data.T
        return np.asarray(-dots if self.metric is Metric.COSINE else self.squares - 2 * dots, np.float32)

    def nearest(self, query: Vectors) -> int:
        return int(np.argmin(self._scores(query[None, :])[0]))

    def nearest_distances(self, queries: Vectors) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Each query's nearest row and its distance in the metric, in chunks."""
        rows, dists = [], []
        for start in range(0, len(queries), 100):
            chunk = queries[start : start + 100]
            scores = self._scores(chunk)
            best = np.argmin(scores, axis=1)
            value = scores[np.arange(len(chunk)), best].astype(np.float64)
            if self.metric is Metric.COSINE:
                dists.append(1.0 + value)
            else:
                squared = value + np.einsum("ij,ij->i", chunk, chunk)
                dists.append(np.sqrt(np.maximum(squared, 0.0)))
            rows.append(best)
        return np.concatenate(rows), np.concatenate(dists)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def _p50_p99(seconds: list[float]) -> tuple[float, float]:
    return float(np.percentile(seconds, 50) * 1e3), float(np.percentile(seconds, 99) * 1e3)


@dataclass(frozen=True)
class Measured:
    """One size: build, memory, latency (p50, p99 in ms) per side, recall@1 per ef, strangers matched."""

    size: int
    build_s: float
    memory_mb: float
    exact_ms: dict[str, tuple[float, float]]  # numpy, hnswlib.BFIndex
    hnsw: dict[int, tuple[float, float, float]]  # ef -> p50 ms, p99 ms, recall@1
    identity_recall: float
    strangers_matched: float


def _measure(synthetic: Synthetic, size: int, efs: tuple[int, ...], threshold: float) -> Measured:
    metric = synthetic.spread.metric
    identities = size // PER_IDENTITY
    centres = synthetic.centres(identities)
    data = synthetic.embeddings(np.repeat(centres, PER_IDENTITY, axis=0))
    asked = synthetic.rng.integers(0, identities, QUERIES)
    queries = synthetic.embeddings(centres[asked])
    before = _rss_mb()
    index = hnswlib.Index(space=SPACES[metric], dim=DIM)
    index.init_index(max_elements=size, M=M, ef_construction=EF_CONSTRUCTION, random_seed=SEED % 1000)
    started = time.perf_counter()
    index.add_items(data, np.arange(size), num_threads=BUILD_THREADS)
    build_s = time.perf_counter() - started
    memory = _rss_mb() - before
    flat = hnswlib.BFIndex(space=SPACES[metric], dim=DIM)
    flat.init_index(size)
    flat.add_items(data, np.arange(size))
    exact = BruteForce(data, metric)
    truth, _ = exact.nearest_distances(queries)
    _, strangers = exact.nearest_distances(synthetic.embeddings(synthetic.centres(STRANGERS)))
    exact_times: dict[str, list[float]] = {"numpy": [], "BFIndex": []}
    hnsw_times: dict[int, list[float]] = {ef: [] for ef in efs}
    found = {ef: np.empty(QUERIES, np.int64) for ef in efs}

    for n, query in enumerate(queries):
        for ef in efs:
            index.set_ef(ef)
            started = time.perf_counter()
            labels, _ = index.knn_query(query, k=1, num_threads=1)
            hnsw_times[ef].append(time.perf_counter() - started)
            found[ef][n] = labels[0, 0]
        if n < TIMED:
            started = time.perf_counter()
            exact.nearest(query)
            exact_times["numpy"].append(time.perf_counter() - started)
            started = time.perf_counter()
            flat.knn_query(query, k=1, num_threads=1)
            exact_times["BFIndex"].append(time.perf_counter() - started)
    return Measured(
        size,
        build_s,
        memory,
        {side: _p50_p99(seconds) for side, seconds in exact_times.items()},
        {ef: (*_p50_p99(hnsw_times[ef]), float(np.mean(found[ef] == truth))) for ef in efs},
        float(np.mean(found[EF_SEARCH] // PER_IDENTITY == asked)),
        float(np.mean(strangers <= threshold)),
    )


def _rows(embedder: str, got: Measured, threshold: float) -> list[str]:
    numpy_ms, flat_ms = got.exact_ms["numpy"], got.exact_ms["BFIndex"]
    rows = [
        f"{embedder}, {got.size:,} enrolled: build {got.build_s:.1f} s ({BUILD_THREADS} threads), "
        f"+{got.memory_mb:.0f} MB resident; exact search p50 / p99: numpy {numpy_ms[0]:.3f} / "
        f"{numpy_ms[1]:.3f} ms, hnswlib.BFIndex {flat_ms[0]:.3f} / {flat_ms[1]:.3f} ms",
        f"    identity right at ef={EF_SEARCH}: {got.identity_recall:.3f}; strangers (people not enrolled) "
        f"nearer than the threshold {threshold:.2f} to someone: {got.strangers_matched:.1%}",
    ]
    for ef, (p50, p99, recall) in got.hnsw.items():
        chosen = "  (chosen)" if ef == EF_SEARCH else ""
        rows.append(
            f"    M={M} ef_construction={EF_CONSTRUCTION} ef={ef:<4} p50 {p50:.3f} ms  p99 {p99:.3f} ms  "
            f"recall@1 {recall:.3f}{chosen}"
        )
    return rows


def _figures(embedder: str, got: Measured) -> list[Figure | Table]:
    name = f"{embedder}, {got.size:,} enrolled"
    p50, p99, recall = got.hnsw[EF_SEARCH]
    numpy_ms = got.exact_ms["numpy"]
    return [
        Figure(
            f"match p50, {name}", p50 * 1e3, "numpy brute force", numpy_ms[0] * 1e3, "us", "ratio <= 0.05"
        ),
        Figure(
            f"match p99, {name}", p99 * 1e3, "numpy brute force", numpy_ms[1] * 1e3, "us", "ratio <= 0.05"
        ),
        Figure(f"recall@1, {name}", recall * 1000, "exact", 1000, "1e-3", "ratio >= 0.99"),
    ]


def run() -> list[Figure | Table]:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    default = DEFAULT_EMBEDDER
    rows: list[str] = []
    figures: list[Figure | Table] = []
    for embedder in (default, *(e for e in EMBEDDERS if e != default)):
        spread = _real_spread(embedder)
        threshold = EMBEDDERS[embedder][0].threshold
        synthetic = Synthetic(spread, np.random.default_rng(SEED))
        genuine, impostor = _medians(
            synthetic.embeddings(np.repeat(synthetic.centres(1000), PER_IDENTITY, axis=0)), spread.metric
        )
        rows.append(
            f"{embedder} ({spread.metric}): real medians genuine {spread.genuine:.3f}, impostor "
            f"{spread.impostor:.3f}; synthetic {genuine:.3f}, {impostor:.3f}"
        )
        sizes = SIZES if embedder == default else SIZES[:-1]
        built: dict[int, Measured] = {}
        for size in sizes:
            efs = EF_SWEEP if size == sizes[-1] else (EF_SEARCH,)
            built[size] = got = _measure(synthetic, size, efs, threshold)
            rows.extend(_rows(embedder, got, threshold))
            if size >= 10_000:
                figures.extend(_figures(embedder, got))
        if LARGEST in built:
            largest, smaller = built[LARGEST], built[10_000]
            name = f"{embedder}, {LARGEST:,} enrolled"
            figures.append(Figure(f"index build, {name}", largest.build_s, "10,000", smaller.build_s, "s"))
            vectors_mb = LARGEST * DIM * 4 / 2**20
            figures.append(
                Figure(f"index resident memory, {name}", largest.memory_mb, "vectors alone", vectors_mb, "MB")
            )
    return [Table("hnswlib against exact search on synthetic enrolled faces", tuple(rows)), *figures]
