"""The model files and real face photos `make setup` fetched (var/models, var/test-faces), each checked
against its manifest. Nothing is downloaded here: a test that needs a missing file fails, naming
`make setup`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.faces.manifest import ModelName
from models.model_files import ModelFileError, load_model
from robot_agent.weights.directory import read_test_face
from robot_agent.weights.fetch import CACHE
from robot_agent.weights.sources import Archive

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "var" / "models"
TEST_FACES_DIR = ROOT / "var" / "test-faces"
SETUP = "`make setup` fetches and builds them"


def model_bytes(name: ModelName) -> bytes:
    """A model file from var/models, checked against its manifest."""
    try:
        return load_model(MODELS_DIR, name)
    except ModelFileError as err:
        pytest.fail(f"{err} ({SETUP})", pytrace=False)


def face_photo(name: str) -> bytes:
    """A real face photo from var/test-faces (e.g. "obama.jpg", "t1.jpg"), checked against its manifest."""
    try:
        return read_test_face(TEST_FACES_DIR, name)
    except ModelFileError as err:
        pytest.fail(str(err), pytrace=False)


def model_path(name: ModelName) -> Path:
    """A model file's path, for libraries that read files themselves (dlib), checked as `model_bytes` does."""
    model_bytes(name)
    return MODELS_DIR / name


def face_photo_path(name: str) -> Path:
    """A test-faces file's path (a photo, or dlib's landmark model), checked as `face_photo` does."""
    face_photo(name)
    return TEST_FACES_DIR / name


class FromSetUp:
    """A `fetch` download that copies the archive `make setup` verified and kept (offline); it counts what it
    was asked for."""

    def __init__(self) -> None:
        self.cached = (MODELS_DIR / CACHE, TEST_FACES_DIR / CACHE)
        self.asked: list[str] = []

    def __call__(self, archive: Archive, folder: Path) -> None:
        self.asked.append(archive.filename)
        for cache in self.cached:
            if (cache / archive.filename).is_file():
                shutil.copyfile(cache / archive.filename, folder / archive.filename)
                return
        pytest.fail(
            f"{archive.filename} is not in {' or '.join(map(str, self.cached))} ({SETUP})", pytrace=False
        )
