"""`robot-agent models build`: the model files made from fetched ones, each by a builder of its own.

A builder turns one verified file into another (bytes in, bytes out) and may check what it made. The result
is recorded in the manifest with what it was built from (the source's sha256) and the builder's version and
tools; a file already built from the same source by the same builder version is left alone.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from models.errors import ModelsError
from models.faces.manifest import BuiltFrom, ManifestEntry
from models.model_files import fetch_remedy, read_manifest, verified_bytes
from robot_agent.errors import WeightsError
from robot_agent.weights import dlib_onnx, sface
from robot_agent.weights.directory import file_sha256, save_manifest, write_atomically
from robot_agent.weights.fetch import Progress, no_progress


def _no_check(_model: bytes) -> None:
    pass


@dataclass(frozen=True)
class Builder:
    """Makes `output` from `source` (a file of the directory) with `convert`, then runs `check` on it."""

    output: str
    source: str
    convert: Callable[[bytes], bytes]
    version: str
    check: Callable[[bytes], None] = _no_check
    # The distributions whose versions decide the output's bytes, recorded in the manifest.
    tools: tuple[str, ...] = ("onnx", "numpy")

    @property
    def name(self) -> str:
        """The converter's dotted name, e.g. robot_agent.weights.sface.convert."""
        return f"{self.convert.__module__}.{self.convert.__qualname__}"

    def origin(self, source_sha256: str) -> BuiltFrom:
        """What the manifest says of this builder's output, made from the source with that sha256 now."""
        return BuiltFrom(
            builder=self.name,
            builder_version=self.version,
            source=self.source,
            source_sha256=source_sha256,
            tools={name: version(name) for name in self.tools},
        )


# One entry per built file.
BUILDERS: tuple[Builder, ...] = (
    Builder(sface.OUTPUT, sface.SOURCE, sface.convert, sface.VERSION, sface.check),
    Builder(dlib_onnx.OUTPUT, dlib_onnx.SOURCE, dlib_onnx.convert, dlib_onnx.VERSION, dlib_onnx.check),
)


@dataclass
class BuildReport:
    built: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.built)


def build(
    directory: Path, builders: Sequence[Builder] = BUILDERS, *, progress: Progress = no_progress
) -> BuildReport:
    """Make every builder's output in `directory` that is missing, corrupt or built from something else."""
    report = BuildReport()
    for builder in builders:
        try:
            # The source must be the file the manifest vouches for (fetch put it there).
            manifest = read_manifest(directory)
            source = verified_bytes(
                directory, manifest, builder.source, fetch_remedy(directory, builder.source)
            )
        except ModelsError as err:
            raise WeightsError(f"cannot build {builder.output}: {err}") from err
        source_entry = manifest.find(builder.source)
        assert source_entry is not None  # verified_bytes found it
        origin = builder.origin(source_entry.sha256)
        path = directory / builder.output
        entry = manifest.find(builder.output)
        report.files.append(builder.output)
        if entry is not None and entry.origin == origin and file_sha256(path) == entry.sha256:
            continue
        progress(f"{builder.output}: building from {builder.source}")
        started = time.perf_counter()
        model = builder.convert(source)
        builder.check(model)
        write_atomically(path, model)
        built = ManifestEntry(
            name=builder.output,
            sha256=hashlib.sha256(model).hexdigest(),
            size=len(model),
            licence=source_entry.licence,
            licence_note=f"that of {builder.source}, which it is built from",
            origin=origin,
        )
        save_manifest(directory, manifest.with_entries(built))
        seconds = time.perf_counter() - started
        progress(f"{builder.output}: built, {len(model) / 1e6:.1f} MB, in {seconds:.1f} s")
        report.built.append(builder.output)
    return report
