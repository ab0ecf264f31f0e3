"""`robot-agent models status`: each file a directory should hold, present, missing, corrupt or outdated,
with where it comes from and its licence."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.faces.manifest import MANIFEST_NAME, Manifest, ManifestEntry, ManifestError, parse_manifest
from robot_agent.weights.directory import file_sha256
from robot_agent.weights.sources import Archive, Extract

if TYPE_CHECKING:  # build imports onnx (~2 s); status needs only what a builder says of itself
    from robot_agent.weights.build import Builder


class FileState(enum.Enum):
    PRESENT = "present"
    MISSING = "missing"
    CORRUPT = "corrupt"  # not the bytes the manifest (or the pin) vouches for, or not listed at all
    OUTDATED = "outdated"  # sound, but built from another source, builder version or tools


@dataclass(frozen=True)
class FileStatus:
    name: str
    state: FileState
    reason: str
    source: str
    licence: str
    size: int | None
    built: bool

    @property
    def ok(self) -> bool:
        return self.state is FileState.PRESENT


@dataclass(frozen=True)
class DirectoryStatus:
    directory: Path
    manifest_problem: str  # "" when the manifest is readable and valid
    files: tuple[FileStatus, ...]

    @property
    def ok(self) -> bool:
        return not self.manifest_problem and all(file.ok for file in self.files)

    @property
    def needs_build_only(self) -> bool:
        """Every fetched file is fine, and only built ones need (re)making."""
        return not self.manifest_problem and all(file.ok or file.built for file in self.files)


def status(directory: Path, archives: Sequence[Archive], builders: Sequence[Builder] = ()) -> DirectoryStatus:
    """What `directory` holds against what `archives` and `builders` put there."""
    manifest, problem = _manifest(directory)
    pins = {item.name: (archive, item) for archive in archives for item in archive.files}
    files: list[FileStatus] = []
    for archive, item in pins.values():
        files.append(_fetched(directory, manifest, archive, item))
    for builder in builders:
        licence = pins[builder.source][1].licence if builder.source in pins else "?"
        files.append(_built(directory, manifest, builder, licence))
    return DirectoryStatus(directory, problem, tuple(files))


def _manifest(directory: Path) -> tuple[Manifest, str]:
    path = directory / MANIFEST_NAME
    try:
        return parse_manifest(path.read_bytes()), ""
    except FileNotFoundError:
        return Manifest(), f"{path}: missing"
    except OSError as err:
        return Manifest(), f"{path}: cannot read: {err.strerror}"
    except ManifestError as err:
        return Manifest(), f"{path}: not a valid manifest: {err}"


def _fetched(directory: Path, manifest: Manifest, archive: Archive, item: Extract) -> FileStatus:
    state, reason, size = _check(directory / item.name, manifest.find(item.name))
    if state is FileState.PRESENT and file_sha256(directory / item.name) != item.sha256:
        state, reason = FileState.OUTDATED, f"not the file pinned for {archive.label}"
    return FileStatus(item.name, state, reason, archive.label, item.licence, size, built=False)


def _built(directory: Path, manifest: Manifest, builder: Builder, licence: str) -> FileStatus:
    entry = manifest.find(builder.output)
    state, reason, size = _check(directory / builder.output, entry)
    source = f"built from {builder.source}"
    source_entry = manifest.find(builder.source)
    if state is FileState.PRESENT and entry is not None:
        if source_entry is None or entry.origin != builder.origin(source_entry.sha256):
            state, reason = FileState.OUTDATED, "built from another source, builder version or tools"
    return FileStatus(builder.output, state, reason, source, licence, size, built=True)


def _check(path: Path, entry: ManifestEntry | None) -> tuple[FileState, str, int | None]:
    digest = file_sha256(path)
    if digest is None:
        return FileState.MISSING, "", None
    size = path.stat().st_size
    if entry is None:
        return FileState.CORRUPT, f"not listed in {MANIFEST_NAME}", size
    if digest != entry.sha256:
        return FileState.CORRUPT, f"sha256 {digest[:16]}…, the manifest says {entry.sha256[:16]}…", size
    return FileState.PRESENT, "", size
