"""The face models and test images, as bytes, from the worktree's `var/models/` and `var/test-faces/`
(fetched at set-up, never by a test). A missing file fails the test naming `make setup`.

Until `models/model_files.py` lands this reads the raw files itself, and repairs OpenCV Zoo's SFace
(int8, as shipped) in memory: the shipped graph declares 29 leftover weight names as inputs that no node
reads, so ONNX Runtime asks for them; dropping every declared input that is an initializer or that no node
consumes leaves `data` alone, and the batch dimension is made symbolic so chips can go in batches.
"""

from __future__ import annotations

import functools
from pathlib import Path

import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "var" / "models"
FACES = ROOT / "var" / "test-faces"

YUNET = "face_detection_yunet_2023mar_int8bq.onnx"
BLAZEFACE_SHORT = "face_detection_short_range.tflite"
BLAZEFACE_FULL = "face_detection_full_range_sparse.tflite"
SFACE_INT8 = "face_recognition_sface_2021dec_int8bq.onnx"


def _read(path: Path) -> bytes:
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: run `make setup` (it fetches the face models and test images)", pytrace=False
        )
    return path.read_bytes()


@functools.cache
def model_bytes(name: str) -> bytes:
    """The bytes of the model file `name` in var/models."""
    return _read(MODELS / name)


@functools.cache
def face_bytes(name: str) -> bytes:
    """The bytes of the test image `name` in var/test-faces (obama.jpg, biden.jpg, t1.jpg, ...)."""
    return _read(FACES / name)


@functools.cache
def sface_bytes() -> bytes:
    """SFace (2021dec, int8 as shipped) repaired in memory so that ONNX Runtime loads it."""
    model = onnx.load_from_string(model_bytes(SFACE_INT8))
    graph = model.graph
    initialised = {tensor.name for tensor in graph.initializer}
    consumed = {name for node in graph.node for name in node.input}
    keep = [value for value in graph.input if value.name not in initialised and value.name in consumed]
    del graph.input[:]
    graph.input.extend(keep)
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "n"
    return bytes(model.SerializeToString())
