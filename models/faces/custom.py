"""ONNX embedders an operator adds beside the two that ship: a file pinned by its sha256, and the spec that
says how to feed it and compare its vectors (models/faces/embed.py EmbedderSpec). Both programs read the same
table, robot.toml's `[vision.embedders.NAME]` and the cloud's `--face-embedders-file` (`[embedders.NAME]`),
so that the cloud enrols faces with exactly the embedder the robots match them with.

The table is checked here, when the configuration is read (pure); the file and its digest when face features
start (models/model_files.py read_custom_embedder), as the shipped files are checked against their manifest.
The sha256 is required because a different file under the same name would give vectors that no enrolled
face of that name can be compared with; the threshold because nothing here evaluates an operator's model
(bench/bench_face_eval.py measures the shipped two only), and a guessed one could name a stranger.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from models.errors import ModelsError
from models.faces.align import TEMPLATES, Template, five_point_template
from models.faces.embed import SPECS, Channels, EmbedderSpec, Layout, Metric

# The names stored faces are kept under (the robot's faces.embedder and the cloud's face_embeddings.embedder
# are 40 characters; the robot's index file header gives a name one byte of length).
_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMPLATE_KEYS: Final = ("points", "size")


class CustomEmbedderError(ModelsError):
    """A `--face-embedders-file` whose tables cannot be used; lists every problem, each with its key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("; ".join(f"{source}: {problem}" for problem in problems))


@dataclass(frozen=True, slots=True)
class CustomEmbedder:
    """An operator's ONNX embedder: its spec (named as configured), the file and the sha256 it must have, and
    `key`, where it was configured, for messages (`[vision.embedders.NAME]`)."""

    spec: EmbedderSpec
    path: Path
    sha256: str
    key: str


def check_embedder_name(name: str) -> str:
    """A name an operator's embedder may take: not a shipped one's (their faces would mix), and one the
    robot's and the cloud's tables can store."""
    if name in SPECS:
        raise ValueError(
            f"{name!r} is a built-in embedder's name ({', '.join(SPECS)}): give yours another, so that faces "
            "it embeds are never compared with the built-in one's"
        )
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an embedder name: 1 to 40 letters, digits, '_' or '-'")
    return name


EmbedderKey = Annotated[str, AfterValidator(check_embedder_name)]


def _path(value: object, info: ValidationInfo) -> Path:
    """A path from TOML, taken from the folder of the file that gave it (context `base_dir`) when relative."""
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError(f"expected the model file's path, got {value!r}")
    try:
        path = Path(value).expanduser()
    except RuntimeError as err:  # "~name" of a user this system does not have
        raise ValueError(f"cannot expand {str(value)!r}: {err}") from err
    base = Path((info.context or {}).get("base_dir", "."))
    return path if path.is_absolute() else base / path


def _point(value: object) -> tuple[float, float] | None:
    """[x, y] from TOML as a point; None if it is not two numbers."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    if not all(isinstance(c, int | float) and not isinstance(c, bool) for c in value):
        return None
    return float(value[0]), float(value[1])


def _template(value: object) -> Template:
    """A shipped template by name, or a table: `size` (the chip's side in pixels) and `points`, five [x, y]
    in the chip's pixels."""
    if isinstance(value, str):
        if value in TEMPLATES:
            return TEMPLATES[value]
        raise ValueError(
            f"unknown template {value!r}: one of {', '.join(TEMPLATES)}, or a table of size and five points"
        )
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a template's name or a table of size and five points, got {value!r}")
    unknown = sorted(set(value) - set(_TEMPLATE_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in the template; allowed: {', '.join(_TEMPLATE_KEYS)}")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 1024:
        raise ValueError(f"template size: the chip's side in pixels, 16 to 1024, got {size!r}")
    raw = value.get("points")
    points = [point for point in map(_point, raw) if point is not None] if isinstance(raw, list) else []
    if not isinstance(raw, list) or len(raw) != 5 or len(points) != 5:
        raise ValueError(
            "template points: five [x, y] in the chip's pixels (the person's right eye, left eye, nose tip, "
            f"right and left mouth corner, as arcface_112 has them), got {raw!r}"
        )
    if any(not (0 <= x <= size and 0 <= y <= size) for x, y in points):
        raise ValueError(f"template points must lie inside the {size}x{size} chip, got {raw!r}")
    return five_point_template("custom", size, (points[0], points[1], points[2], points[3], points[4]))


class EmbedderTable(BaseModel):
    """One embedder's table, as robot.toml's `[vision.embedders.NAME]` and the cloud's `[embedders.NAME]`
    give it. A pixel becomes (value - mean) * scale, `mean` in the model's channel order; the defaults are raw
    RGB pixels in NCHW, what both shipped embedders take."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: Annotated[Path, PlainValidator(_path)]
    sha256: str
    template: Annotated[Template, PlainValidator(_template)]
    channels: Channels = Channels.RGB
    layout: Layout = Layout.NCHW
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = Field(default=1.0, gt=0)
    metric: Metric
    # No default: nothing here evaluates the model (docs/decisions.md §44).
    threshold: float = Field(gt=0)

    @field_validator("sha256")
    @classmethod
    def _digest(cls, digest: str) -> str:
        if not _SHA256.fullmatch(digest.lower()):
            raise ValueError(
                f"expected the file's sha256, 64 hex digits as `sha256sum FILE` prints, got {digest!r}"
            )
        return digest.lower()

    @field_validator("threshold")
    @classmethod
    def _within_the_metric(cls, threshold: float, info: ValidationInfo) -> float:
        if info.data.get("metric") is Metric.COSINE and threshold >= 2:
            raise ValueError(f"{threshold} accepts every face: a cosine distance is below 2")
        return threshold

    def embedder(self, name: str, key: str) -> CustomEmbedder:
        """This table as the embedder `name`, configured at `key`."""
        spec = EmbedderSpec(
            name=name,
            template=replace(self.template, name=name) if self.template.name == "custom" else self.template,
            channels=self.channels,
            layout=self.layout,
            mean=self.mean,
            scale=self.scale,
            metric=self.metric,
            threshold=self.threshold,
        )
        return CustomEmbedder(spec, self.path, self.sha256, key)


class _EmbeddersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    embedders: dict[EmbedderKey, EmbedderTable]


def parse_embedders_file(raw: Mapping[str, Any], base_dir: Path, source: str) -> dict[str, CustomEmbedder]:
    """The embedders of a parsed `--face-embedders-file` (`[embedders.NAME]` tables), relative paths taken
    from `base_dir`; CustomEmbedderError naming each bad key (in `source`) otherwise."""
    try:
        # Through JSON, as robot.toml is read, so that strict mode takes strings for paths and enums.
        text = json.dumps(raw, default=str)
        parsed = _EmbeddersFile.model_validate_json(text, strict=True, context={"base_dir": base_dir})
    except ValidationError as err:
        raise CustomEmbedderError(
            source, [_problem(e["loc"], e["type"], e["msg"]) for e in err.errors()]
        ) from err
    return {
        name: table.embedder(name, f"[embedders.{name}] of {source}")
        for name, table in parsed.embedders.items()
    }


def _problem(loc: tuple[int | str, ...], kind: str, message: str) -> str:
    key = ".".join(str(part) for part in loc if part != "[key]")
    if kind == "missing":
        return f"{key}: missing required key"
    if kind == "extra_forbidden":
        allowed = EmbedderTable.model_fields if len(loc) == 3 else _EmbeddersFile.model_fields
        return f"{key}: unknown key; allowed here: {', '.join(sorted(allowed))}"
    return f"{key}: {message.removeprefix('Value error, ')}"
