"""Embedding: an ONNX model run by ONNX Runtime from its bytes, described by an `EmbedderSpec` (its chip's
template, pixel normalisation, channel order, layout, distance and default threshold).

Any ONNX embedder fits: give its bytes and a spec. Two specs ship: SFace (OpenCV Zoo, 128-d, cosine) and
dlib's ResNet (128-d, L2) as our converter writes it. A distance is always "smaller is closer": L2 for
dlib, 1 - cosine similarity for SFace, whose vectors are L2-normalised here so that an index's L2 or
inner product agrees with cosine. Thresholds come from the evaluation (bench/bench_face_eval.py,
docs/decisions.md §39), not from the models' publishers.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # onnxruntime 1.32 ships no py.typed
from numpy.typing import NDArray

from models.faces.align import ARCFACE_112, DLIB_150, Template
from models.faces.errors import ModelLoadError
from models.faces.image import BgrImage

Embeddings = NDArray[np.float32]


class Metric(enum.StrEnum):
    """How two embeddings are compared; both give a distance, smaller is closer."""

    L2 = "l2"  # Euclidean distance
    COSINE = "cosine"  # 1 - cosine similarity, in [0, 2]


class Channels(enum.StrEnum):
    RGB = "rgb"
    BGR = "bgr"


class Layout(enum.StrEnum):
    NCHW = "nchw"
    NHWC = "nhwc"


@dataclass(frozen=True, slots=True)
class EmbedderSpec:
    """What an ONNX embedder expects and how its vectors compare. A pixel becomes (value - mean) * scale,
    `mean` given per channel in the model's channel order."""

    name: str
    template: Template
    channels: Channels
    layout: Layout
    mean: tuple[float, float, float]
    scale: float
    metric: Metric
    threshold: float

    @property
    def size(self) -> int:
        return self.template.size


# Thresholds (both): the evaluation's impostor tail taken one decade further than it can measure. Its 11,492
# impostor pairs (36 pairs of people, YuNet, the default detector) give the distance at FAR 1% and 0.1%; a
# robot compares a face with every enrolled passenger, which multiplies the false accepts by their number,
# so the threshold is where the line through those two points (distance against log FAR) reaches FAR 0.01%,
# rounded down. The evaluation cannot measure that rate; none of its impostor pairs is accepted there.
# The published thresholds (OpenCV's 0.637 for SFace, dlib's 0.6) accepted 0.31% and 1.08% of our
# impostor pairs.

# OpenCV's FaceRecognizerSF feeds SFace blobFromImage(chip, 1.0, (112, 112), 0, swapRB=true): RGB, 0-255.
# Threshold: FAR 1% at 0.678, 0.1% at 0.608, so 0.01% at 0.539 -> 0.53: TAR 0.997 over 1,183 genuine pairs
# (all of Obama; 1.000 at 0.608). A cosine similarity of 0.47 (OpenCV's default: 0.363).
SFACE = EmbedderSpec(
    name="sface",
    template=ARCFACE_112,
    channels=Channels.RGB,
    layout=Layout.NCHW,
    mean=(0.0, 0.0, 0.0),
    scale=1.0,
    metric=Metric.COSINE,
    threshold=0.53,
)

# dlib's ResNet as our converter writes it (robot_agent/weights, decision 36): input [n, 3, 150, 150],
# RGB, raw 0..255, the mean subtraction and /256 inside the graph (their constants are the .dat file's);
# on dlib's own chip it gives dlib's descriptor to 3e-7. Threshold: FAR 1% at 0.597, 0.1% at 0.549, so
# 0.01% at 0.502 -> 0.50: TAR 0.880 (0.966 at 0.549). It suffers from YuNet's landmarks: cut by dlib's own,
# in face_recognition, the same pairs were at most 0.572 apart (ours 0.611). dlib documents 0.6.
DLIB_RESNET = EmbedderSpec(
    name="dlib_resnet_v1",
    template=DLIB_150,
    channels=Channels.RGB,
    layout=Layout.NCHW,
    mean=(0.0, 0.0, 0.0),
    scale=1.0,
    metric=Metric.L2,
    threshold=0.50,
)

SPECS = {spec.name: spec for spec in (SFACE, DLIB_RESNET)}


def distances(
    metric: Metric, query: NDArray[np.floating[Any]], gallery: NDArray[np.floating[Any]]
) -> NDArray[np.float64]:
    """The distance from `query` (d,) to each row of `gallery` (n, d) under `metric`."""
    q = np.asarray(query, np.float64)
    g = np.asarray(gallery, np.float64).reshape(-1, q.shape[0])
    if metric is Metric.L2:
        return np.asarray(np.linalg.norm(g - q, axis=1), np.float64)
    norms = np.linalg.norm(g, axis=1) * np.linalg.norm(q)
    return np.asarray(1.0 - (g @ q) / np.maximum(norms, 1e-12), np.float64)


def distance(metric: Metric, a: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]]) -> float:
    """The distance between two embeddings under `metric`."""
    return float(distances(metric, a, b[None, :])[0])


class Embedder:
    """An ONNX embedder: aligned BGR chips in, one row per chip out, in batches of up to `batch_size`
    (1 when the model's batch dimension is fixed at 1). `threads` is ONNX Runtime's intra-op count."""

    def __init__(self, model: bytes, spec: EmbedderSpec, *, threads: int = 1, batch_size: int = 8) -> None:
        self.spec = spec
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT warns about every unused initializer
        try:
            self._session: Any = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        # ONNX Runtime's pybind errors (InvalidProtobuf, Fail, InvalidGraph...) share no base but Exception.
        except Exception as err:
            raise ModelLoadError(spec.name, f"ONNX Runtime cannot load it: {err}") from err
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            names = [i.name for i in inputs]
            raise ModelLoadError(spec.name, f"expected one image input, the model has {names}")
        self._input = inputs[0].name
        shape = list(inputs[0].shape)
        expected = [3, spec.size, spec.size] if spec.layout is Layout.NCHW else [spec.size, spec.size, 3]
        fixed = [(dim, want) for dim, want in zip(shape[1:], expected, strict=False) if isinstance(dim, int)]
        if len(shape) != 4 or any(dim != want for dim, want in fixed):
            raise ModelLoadError(
                spec.name,
                f"input {self._input} has shape {shape}; the spec says (n, {', '.join(map(str, expected))})",
            )
        self.batch_size = 1 if shape[0] == 1 else batch_size
        out = outputs[0].shape[-1]
        self.dimension: int | None = out if isinstance(out, int) else None
        self._mean = np.array(spec.mean, np.float32)

    def _tensor(self, chips: Sequence[BgrImage]) -> NDArray[np.float32]:
        size = self.spec.size
        batch = np.stack(
            [
                c
                if c.shape[:2] == (size, size)
                else cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA)
                for c in chips
            ]
        ).astype(np.float32)
        if self.spec.channels is Channels.RGB:
            batch = batch[..., ::-1]
        batch = (batch - self._mean) * np.float32(self.spec.scale)
        if self.spec.layout is Layout.NCHW:
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, np.float32)

    def embed(self, chips: Sequence[BgrImage]) -> Embeddings:
        """The embeddings (n, d) of `chips` (BGR, the spec's size; others are resized). Vectors compared by
        cosine come out L2-normalised."""
        if not chips:
            return np.zeros((0, self.dimension or 0), np.float32)
        rows = []
        for start in range(0, len(chips), self.batch_size):
            tensor = self._tensor(chips[start : start + self.batch_size])
            rows.append(np.asarray(self._session.run(None, {self._input: tensor})[0], np.float32))
        vectors = np.concatenate(rows).reshape(len(chips), -1)
        if self.spec.metric is Metric.COSINE:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
