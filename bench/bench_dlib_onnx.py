"""dlib's face ResNet as our converter makes it, in ONNX Runtime, against dlib itself on the same chips.

Chips: every face dlib's HOG detector finds in the set-up's real photos (obama x3, biden, t1's group of 6),
cut by dlib (5-point landmarks, `get_face_chip` at 150 px), so both sides embed the same pixels. Rounds
alternate ONNX Runtime and dlib over all chips, so that this shared machine's load falls on both alike; each
side's figure is its best round. dlib-bin runs as it is shipped (its own threading). The last lines are the
largest difference from dlib's descriptor per photo, in units of 1e-9, against the tests' tolerance (1e-4).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlib  # type: ignore[import-untyped]
import numpy as np
import onnxruntime  # type: ignore[import-untyped]
from numpy.typing import NDArray

from bench.report import Figure
from robot_agent.weights import dlib_onnx

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "var" / "models"
TEST_FACES = ROOT / "var" / "test-faces"
PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "t1.jpg")
ROUNDS = 5
BATCH = 8
TOLERANCE = 1e-4
TARGET = "ratio <= 0.1"  # the ">= 10x faster than face_recognition", for the embedder alone


def _file(path: Path) -> Path:
    if not path.is_file():
        raise SystemExit(f"{path.relative_to(ROOT)} is missing: `make setup` fetches it")
    return path


def _chips() -> dict[str, list[NDArray[np.uint8]]]:
    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(str(_file(TEST_FACES / "shape_predictor_5_face_landmarks.dat")))
    chips = {}
    for photo in PHOTOS:
        image = dlib.load_rgb_image(str(_file(TEST_FACES / photo)))
        faces = detector(image, 0)
        chips[photo] = [dlib.get_face_chip(image, landmarks(image, face), size=150) for face in faces]
    return chips


def _session(model: bytes, threads: int) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _per_item(work: Callable[[], object], items: int) -> float:
    """Microseconds per item of one run of `work`, which handles `items` items."""
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) / items * 1e6


def run() -> list[Figure]:
    source = _file(MODELS / dlib_onnx.SOURCE).read_bytes()
    started = time.perf_counter()
    model = dlib_onnx.convert(source)
    convert_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    recogniser = dlib.face_recognition_model_v1(str(MODELS / dlib_onnx.SOURCE))
    dlib_load_ms = (time.perf_counter() - started) * 1e3

    chips = _chips()
    every = [chip for photo in PHOTOS for chip in chips[photo]]
    tensors = np.stack(every).transpose(0, 3, 1, 2).astype(np.float32)
    batches = [tensors[i : i + BATCH] for i in range(0, len(tensors), BATCH)]
    sessions = {threads: _session(model, threads) for threads in (1, 2)}

    def onnx_single(threads: int) -> Callable[[], object]:
        return lambda: [sessions[threads].run(None, {"chip": chip[None]}) for chip in tensors]

    def onnx_batched(threads: int) -> Callable[[], object]:
        return lambda: [sessions[threads].run(None, {"chip": batch}) for batch in batches]

    def dlib_single() -> object:
        return [recogniser.compute_face_descriptor(chip) for chip in every]

    for session in sessions.values():  # the first run allocates
        session.run(None, {"chip": batches[0]})
    per_face: dict[str, float] = {}
    for _ in range(ROUNDS):  # alternate, keep each side's best
        for name, work in (
            ("ONNX, 1 thread", onnx_single(1)),
            ("ONNX, 2 threads", onnx_single(2)),
            (f"ONNX, batches of {BATCH}, 1 thread", onnx_batched(1)),
            (f"ONNX, batches of {BATCH}, 2 threads", onnx_batched(2)),
            ("dlib", dlib_single),
        ):
            us = _per_item(work, len(every))
            per_face[name] = min(per_face.get(name, float("inf")), us)

    figures = [
        Figure(f"{name}, per face", us, f"dlib-bin, {len(every)} faces", per_face["dlib"], "us", TARGET)
        for name, us in per_face.items()
        if name != "dlib"
    ]
    figures.append(Figure("convert .dat to ONNX", convert_ms, "dlib loads the .dat", dlib_load_ms, "ms"))
    figures.append(Figure("ONNX file size", len(model) / 1e3, ".dat size", len(source) / 1e3, "kB"))
    one_thread = sessions[1]
    for photo in PHOTOS:
        expected = np.array([recogniser.compute_face_descriptor(chip) for chip in chips[photo]])
        batch = np.stack(chips[photo]).transpose(0, 3, 1, 2).astype(np.float32)
        (got,) = one_thread.run(None, {"chip": batch})
        worst = float(np.abs(got - expected).max())
        figures.append(
            Figure(
                f"max |ONNX - dlib|, {photo} ({len(chips[photo])})",
                worst * 1e9,
                "tolerance",
                TOLERANCE * 1e9,
                "1e-9",
                "ratio <= 1",
            )
        )
    return figures
