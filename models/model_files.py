"""The model directory, read at the edge: the manifest, and each model file checked against it (sha256 and
size) before its bytes are handed to the face pipeline, which never opens a file itself.

Both programs load their models here (the robot from robot.toml's `[vision] models_dir`, cloud-sync from
`--models-dir`). Nothing is ever downloaded: the files come from `robot-agent models fetch` and `models build`
at set-up, and every error says which of the two to run. An operator's own embedder (models/faces/custom.py)
is read from its path and checked against the sha256 its table pins instead.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable
from pathlib import Path

from models.errors import ModelsError
from models.faces.choice import PipelineChoice
from models.faces.custom import CustomEmbedder
from models.faces.manifest import (
    BUILT_FILES,
    MANIFEST_NAME,
    MODEL_FILES,
    Manifest,
    ManifestError,
    ModelName,
    parse_manifest,
)
from models.faces.pipeline import FacePipeline


class ModelFileError(ModelsError):
    """A model file, or the manifest that vouches for it, missing, unreadable or not the file pinned. The
    message names the file and the command that puts it right."""

    def __init__(self, path: Path, problem: str, remedy: str) -> None:
        self.path = path
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{path}: {problem}; {remedy}")


def fetch_remedy(directory: Path, name: str | None = None) -> str:
    """What to run to (re)make `name` in `directory` (every file when `name` is None)."""
    where = f" --models-dir {shlex.quote(str(directory))}"
    fetch = f"`robot-agent models fetch{where}`"
    build = f"`robot-agent models build{where}`"
    if name is None:
        return f"run {fetch}, then {build} (`make setup` runs both)"
    if name in BUILT_FILES:
        return f"run {build} (after {fetch})"
    return f"run {fetch}"


def read_manifest(
    directory: Path,
    expected: Iterable[str] = MODEL_FILES,
    remedy: str | None = None,
    needed_for: Iterable[str] = (),
) -> Manifest:
    """The directory's manifest, listing only `expected` names; ModelFileError naming it (and the files
    `needed_for` which it was read) otherwise."""
    path = directory / MANIFEST_NAME
    remedy = remedy or fetch_remedy(directory)
    wanted = ", ".join(needed_for)
    cannot = f", so {wanted} cannot be checked" if wanted else ""
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ModelFileError(path, f"no manifest (nothing was fetched here){cannot}", remedy) from err
    except OSError as err:
        raise ModelFileError(path, f"cannot read the manifest: {err.strerror}{cannot}", remedy) from err
    try:
        manifest = parse_manifest(data)
    except ManifestError as err:
        raise ModelFileError(path, f"not a valid manifest: {err}{cannot}", remedy) from err
    unknown = sorted(manifest.names() - frozenset(expected))
    if unknown:
        raise ModelFileError(
            path, f"lists files this version does not know: {', '.join(unknown)}{cannot}", remedy
        )
    return manifest


def verified_bytes(directory: Path, manifest: Manifest, name: str, remedy: str) -> bytes:
    """The bytes of `name`, once its size and sha256 are those the manifest records."""
    path = directory / name
    entry = manifest.find(name)
    if entry is None:
        raise ModelFileError(path, f"not listed in {directory / MANIFEST_NAME}", remedy)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ModelFileError(path, "missing", remedy) from err
    except OSError as err:
        raise ModelFileError(path, f"cannot read: {err.strerror}", remedy) from err
    if len(data) != entry.size:
        raise ModelFileError(path, f"{len(data)} bytes, the manifest says {entry.size} (corrupt)", remedy)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ModelFileError(path, f"sha256 {digest}, the manifest says {entry.sha256} (corrupt)", remedy)
    return data


def load_model(directory: Path, name: ModelName) -> bytes:
    """One model file's bytes, checked against the manifest; ModelFileError naming what to run otherwise."""
    return load_models(directory, name)[name]


def load_models(directory: Path, *names: ModelName) -> dict[ModelName, bytes]:
    """Several model files' bytes, by name, each checked against one reading of the manifest."""
    manifest = read_manifest(directory, needed_for=names)
    return {name: verified_bytes(directory, manifest, name, fetch_remedy(directory, name)) for name in names}


def read_custom_embedder(embedder: CustomEmbedder) -> bytes:
    """An operator's embedder file, once its sha256 is the one its table pins; ModelFileError naming the
    path and the table otherwise."""
    path, key = embedder.path, embedder.key
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ModelFileError(
            path, f"missing (the path {key} gives)", f"put the file there or fix {key}"
        ) from err
    except OSError as err:
        raise ModelFileError(
            path, f"cannot read: {err.strerror} (the path {key} gives)", f"fix {key}"
        ) from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != embedder.sha256:
        raise ModelFileError(
            path,
            f"sha256 {digest}, but {key} pins {embedder.sha256}",
            "put the pinned file back; a different model is a new embedder: give it its own table, name and "
            "threshold, so that faces it embeds are not compared with the old one's",
        )
    return data


def open_pipeline(directory: Path, choice: PipelineChoice) -> FacePipeline:
    """The face pipeline `choice` names, from the model directory's files (each checked against the
    manifest) and an operator's embedder file (checked against its sha256); ModelFileError naming the
    command to run, or the table to fix, when one is missing or wrong."""
    files = load_models(directory, *choice.files())
    custom = read_custom_embedder(choice.embedder) if isinstance(choice.embedder, CustomEmbedder) else None
    return choice.build(files.__getitem__, custom)
