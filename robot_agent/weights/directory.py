"""Writing into a model directory: files and the manifest replaced atomically (a half-written file is never
seen under its name), and the manifest read leniently (a broken one is rewritten, never an obstacle)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from models.faces.manifest import MANIFEST_NAME, Manifest, ManifestError, parse_manifest
from models.model_files import read_manifest, verified_bytes
from robot_agent.errors import WeightsError
from robot_agent.weights.sources import TEST_FACE_FILES

CHUNK = 1 << 20


def file_sha256(path: Path) -> str | None:
    """The sha256 of the file at `path`, or None when there is no such file."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror}") from err
    return digest.hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by a file holding `data`: written beside it, synced, then renamed over it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise WeightsError(f"cannot write {path}: {err.strerror}") from err


def current_manifest(directory: Path) -> Manifest:
    """The directory's manifest as it stands; an empty one when it is missing or broken (fetch rewrites it
    from the files, which are checked against the pins, so nothing is lost)."""
    try:
        return parse_manifest((directory / MANIFEST_NAME).read_bytes())
    except (OSError, ManifestError):
        return Manifest()


def save_manifest(directory: Path, manifest: Manifest) -> bool:
    """Write the manifest if it changed (so a fetch with nothing to do touches nothing); whether it did."""
    text = manifest.to_json().encode()
    path = directory / MANIFEST_NAME
    try:
        if path.read_bytes() == text:
            return False
    except OSError:
        pass
    write_atomically(path, text)
    return True


def read_test_face(directory: Path, name: str) -> bytes:
    """A real face photo `models fetch --test-faces` put in `directory` (e.g. "obama.jpg"), checked against
    its manifest: the tests' and the benchmarks' one way in. ModelFileError names `make setup` otherwise."""
    remedy = "run `make setup`"
    manifest = read_manifest(directory, TEST_FACE_FILES, remedy, needed_for=[name])
    return verified_bytes(directory, manifest, name, remedy)
