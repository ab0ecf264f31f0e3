"""Our ONNX of dlib's face ResNet against dlib itself (dlib-bin, a dev dependency): every face dlib finds in
the real photos set-up fetched gives dlib's own 128-d descriptor to 1e-4, one by one and in a batch.

Chips are cut by dlib (its HOG detector, its 5-point landmarks, `get_face_chip` at 150 px), so both sides see
the same pixels and only the network is compared. The files come from `make setup`; none is downloaded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dlib  # type: ignore[import-untyped]
import numpy as np
import onnxruntime  # type: ignore[import-untyped]
import pytest

from robot_agent.weights import dlib_onnx
from robot_agent.weights.dlib_serialize import DlibModelError
from tests.support.face_files import face_photo, face_photo_path, model_bytes, model_path

LANDMARKS = "shape_predictor_5_face_landmarks.dat"  # dlib's own 5-point model, for cutting chips in tests
# Each photo and the faces dlib's detector finds in it (not upsampled): 4 one-face photos of 2 people,
# and a group of 6.
PHOTOS = {"obama.jpg": 1, "obama2.jpg": 1, "obama3.jpg": 1, "biden.jpg": 1, "t1.jpg": 6}
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Dlib:
    detector: Any
    landmarks: Any
    recogniser: Any


@pytest.fixture(scope="module")
def source() -> bytes:
    return model_bytes(dlib_onnx.SOURCE)


@pytest.fixture(scope="module")
def model(source: bytes) -> bytes:
    return dlib_onnx.convert(source)


@pytest.fixture(scope="module")
def session(model: bytes) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def reference() -> Dlib:
    return Dlib(
        detector=dlib.get_frontal_face_detector(),
        landmarks=dlib.shape_predictor(str(face_photo_path(LANDMARKS))),
        recogniser=dlib.face_recognition_model_v1(str(model_path(dlib_onnx.SOURCE))),
    )


@pytest.mark.parametrize("photo", PHOTOS)
def test_every_face_gets_dlibs_descriptor(photo: str, session: Any, reference: Dlib) -> None:
    image = dlib.load_rgb_image(str(face_photo_path(photo)))
    faces = reference.detector(image, 0)
    assert len(faces) == PHOTOS[photo]
    chips = [dlib.get_face_chip(image, reference.landmarks(image, face), size=150) for face in faces]
    expected = np.array([reference.recogniser.compute_face_descriptor(chip) for chip in chips])
    batch = np.stack(chips).transpose(0, 3, 1, 2).astype(np.float32)
    (together,) = session.run([dlib_onnx.OUTPUT_NAME], {dlib_onnx.INPUT_NAME: batch})
    one_by_one = np.concatenate(
        [session.run([dlib_onnx.OUTPUT_NAME], {dlib_onnx.INPUT_NAME: chip[None]})[0] for chip in batch]
    )
    for how, got in (("in a batch", together), ("one by one", one_by_one)):
        worst = float(np.abs(got - expected).max())
        assert worst <= TOLERANCE, f"{photo} {how}: max abs difference {worst:.1e} from dlib"


def test_the_models_signature(session: Any) -> None:
    (chip,) = session.get_inputs()
    (descriptor,) = session.get_outputs()
    assert (chip.name, chip.type, chip.shape) == ("chip", "tensor(float)", ["batch", 3, 150, 150])
    assert (descriptor.name, descriptor.type, descriptor.shape) == (
        "descriptor",
        "tensor(float)",
        ["batch", 128],
    )
    threshold = session.get_modelmeta().custom_metadata_map["dlib_distance_threshold"]
    assert float(threshold) == pytest.approx(0.6)


def test_the_build_check_passes_and_the_bytes_are_reproducible(model: bytes, source: bytes) -> None:
    dlib_onnx.check(model)
    assert dlib_onnx.convert(source) == model


def test_a_truncated_or_foreign_file_is_a_named_error(source: bytes) -> None:
    with pytest.raises(DlibModelError, match=r"truncated: .* at byte \d+, the data ends at byte 11233033"):
        dlib_onnx.convert(source[: len(source) // 2])
    with pytest.raises(DlibModelError, match="loss layer"):
        dlib_onnx.convert(face_photo(LANDMARKS))
