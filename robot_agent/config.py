"""robot.toml → a frozen, typed configuration, validated once at start-up.

One pydantic model per section, `extra="forbid"` so that a typo is an error, strict types (TOML has
them), camera sources as a discriminated union on `type`. Relative paths are resolved against the
directory of the TOML file. Every problem is reported with its dotted key and the file's name.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
import uuid
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from models.faces.choice import EMBEDDERS, DetectorName, PipelineChoice, embedder_named
from models.faces.custom import EmbedderKey, EmbedderTable
from models.keyfiles import check_private
from robot_agent.errors import ConfigError, ConfigProblem

# -- path types -----------------------------------------------------------------------------------------


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("base_dir", "."))


def _resolve(path: Path, info: ValidationInfo) -> Path:
    try:
        expanded = path.expanduser()
    except RuntimeError as err:  # "~name" of a user this system does not have
        raise ValueError(f"cannot expand {str(path)!r}: {err}") from err
    return (_base_dir(info) / expanded).resolve()


def _existing_file(path: Path, info: ValidationInfo) -> Path:
    resolved = _resolve(path, info)
    if not resolved.exists():
        raise ValueError(f"file not found: {resolved}")
    if not resolved.is_file():
        raise ValueError(f"not a regular file: {resolved}")
    if not os.access(resolved, os.R_OK):
        raise ValueError(f"file not readable: {resolved}")
    return resolved


def _existing_dir(path: Path, info: ValidationInfo) -> Path:
    resolved = _resolve(path, info)
    if not resolved.is_dir():
        raise ValueError(f"directory not found: {resolved}")
    return resolved


def _writable_path(path: Path, info: ValidationInfo) -> Path:
    """A file the agent creates: its nearest existing ancestor must be a writable directory."""
    resolved = _resolve(path, info)
    if resolved.is_dir():
        raise ValueError(f"is a directory, expected a file path: {resolved}")
    ancestor = resolved.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create {resolved}: {ancestor} is not a writable directory")
    return resolved


def _private_key_file(path: Path, info: ValidationInfo) -> Path:
    context = info.context or {}
    if context.get("key_may_be_missing"):
        return _writable_path(path, info)
    resolved = _resolve(path, info)
    if not resolved.exists():
        raise ValueError(f"file not found: {resolved} (create it with `robot-agent keys init`)")
    resolved = _existing_file(path, info)
    check_private(resolved)  # a KeyFileProblem is a ValueError: pydantic reports it under the key
    return resolved


# The files `cloud-sync robot provision` writes for a robot (its broker login, its first trust list).
PROVISION_HINT = "`cloud-sync robot provision ROBOT_ID --out DIR` writes it"


def _provisioned_file(path: Path, info: ValidationInfo) -> Path:
    """A file provisioning writes: `keys init`, `keys show` and `check-config` come before it exists (the
    cloud provisions a robot only once it knows its key), so they take it as a path; `run` needs it."""
    context = info.context or {}
    resolved = _resolve(path, info)
    if context.get("provisioned_may_be_missing") and not resolved.exists():
        return resolved
    if not resolved.exists():
        raise ValueError(f"file not found: {resolved} ({PROVISION_HINT})")
    return _existing_file(path, info)


def _any_path(value: object, info: ValidationInfo) -> Path:
    """A path from TOML (a string) or a default (a Path), resolved against the TOML's folder."""
    if not isinstance(value, str | Path):
        raise ValueError(f"expected a path, got {value!r}")
    return _resolve(Path(value), info)


# A path the agent neither reads nor writes at start-up (it may not exist yet); a default is resolved too.
ResolvedPath = Annotated[Path, PlainValidator(_any_path)]
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
ProvisionedFile = Annotated[Path, AfterValidator(_provisioned_file)]
ExistingDir = Annotated[Path, AfterValidator(_existing_dir)]
WritablePath = Annotated[Path, AfterValidator(_writable_path)]
PrivateKeyFile = Annotated[Path, AfterValidator(_private_key_file)]


# -- sections ---------------------------------------------------------------------------------------------


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RobotSection(Section):
    """Who this robot is."""

    id: uuid.UUID
    key_file: PrivateKeyFile = Field(description="The robot's Ed25519 private key (PEM, mode 0600).")


def _check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as err:
        raise ValueError(f"unknown time zone {name!r}") from err
    return name


class AssignmentSection(Section):
    """The train this robot serves; the cloud may reassign it (its word wins over this default)."""

    train_number: int = Field(gt=0)
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"


class TlsSection(Section):
    ca_file: ExistingFile | None = None
    cert_file: ExistingFile | None = None
    key_file: ExistingFile | None = None

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self


def _check_mqtt_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    if parts.username or parts.password:
        raise ValueError("credentials do not belong in the URL: put them in credentials_file")
    try:
        _ = parts.port
    except ValueError as err:
        raise ValueError(f"bad port in {url!r}") from err
    return url


class CloudSection(Section):
    """The link to the fleet's MQTT broker."""

    mqtt_url: Annotated[str, AfterValidator(_check_mqtt_url)]
    credentials_file: ProvisionedFile | None = None
    tls: TlsSection | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    telemetry_interval_s: float = Field(default=10.0, ge=1, le=3600)

    @property
    def host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @model_validator(mode="after")
    def _tls_matches_scheme(self) -> CloudSection:
        if self.tls is not None and urlsplit(self.mqtt_url).scheme != "mqtts":
            raise ValueError("a [cloud.tls] section needs an mqtts:// URL")
        return self


class StorageSection(Section):
    database: WritablePath


class DeviceSource(Section):
    """A V4L2 camera: an index (0 is /dev/video0) or a device path."""

    type: Literal["device"]
    device: int | str = 0


class FileSource(Section):
    """A video file, played at the configured fps."""

    type: Literal["file"]
    path: ExistingFile
    loop: bool = False


def _check_rtsp_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise ValueError(f"expected rtsp://HOST/PATH, got {url!r}")
    return url


class RtspSource(Section):
    """A network camera."""

    type: Literal["rtsp"]
    url: Annotated[str, AfterValidator(_check_rtsp_url)]


class FolderSource(Section):
    """A folder of images, in name order (tests and the demo)."""

    type: Literal["folder"]
    path: ExistingDir
    pattern: str = "*.png"
    loop: bool = True


CameraSource = Annotated[DeviceSource | FileSource | RtspSource | FolderSource, Field(discriminator="type")]


class CameraSection(Section):
    source: CameraSource
    width: int = Field(default=1280, ge=32, le=7680)
    height: int = Field(default=720, ge=32, le=4320)
    fps: float = Field(default=15.0, gt=0, le=240)


_FACES = PipelineChoice()


class VisionSection(Section):
    """Faces: the detector and embedder by name (models/faces/choice.py), where their model files, the face
    key and the matcher's index are. Checked when face features start (`robot-agent faces ...`, and `run`
    with match_faces), not here: without the models or the key the robot still checks tickets by QR.
    `[vision.embedders.NAME]` tables add ONNX embedders of the operator's (models/faces/custom.py), which
    `embedder` may then name; their files too are checked when faces start."""

    match_faces: bool = False
    detector: DetectorName = _FACES.detector
    # Before `embedder`, whose check reads it.
    embedders: dict[EmbedderKey, EmbedderTable] = {}
    embedder: str = _FACES.spec.name
    detection_min_confidence: float = Field(default=_FACES.min_confidence, ge=0, le=1)
    # None: the embedder's own threshold (EmbedderSpec.threshold), the one the evaluation sets.
    match_max_distance: float | None = Field(default=None, gt=0)
    match_min_margin: float = Field(default=0.0, ge=0, le=2)
    index_file: WritablePath = Path("var/faces.hnsw")
    face_key_file: ResolvedPath = Field(default=Path("var/faces.key"), validate_default=True)
    # Checked when faces start (models/model_files.py), not here: `models fetch` makes it.
    models_dir: ResolvedPath = Field(default=Path("var/models"), validate_default=True)

    @field_validator("embedder")
    @classmethod
    def _known_embedder(cls, name: str, info: ValidationInfo) -> str:
        tables = info.data.get("embedders")
        if tables is None:  # a bad [vision.embedders] table, reported under its own key
            return name
        if name not in EMBEDDERS and name not in tables:
            known = [*EMBEDDERS, *tables]
            raise ValueError(
                f"unknown embedder {name!r}: one of {', '.join(known)} (a name of your own needs a "
                f"[vision.embedders.{name}] table)"
            )
        return name

    @field_validator("match_max_distance")
    @classmethod
    def _only_stricter(cls, distance: float | None, info: ValidationInfo) -> float | None:
        embedder, tables = info.data.get("embedder"), info.data.get("embedders")
        if distance is None or embedder is None or tables is None:
            return distance
        limit = tables[embedder].threshold if embedder in tables else EMBEDDERS[embedder][0].threshold
        if distance > limit:
            raise ValueError(
                f"{distance} is above the {embedder} embedder's own threshold {limit:.3f}: this key may "
                "only make matching stricter (leave it out to use the embedder's)"
            )
        return distance

    @property
    def faces_enabled(self) -> bool:
        return self.match_faces

    @property
    def choice(self) -> PipelineChoice:
        """The face pipeline these keys name."""
        custom = {
            name: table.embedder(name, f"[vision.embedders.{name}]") for name, table in self.embedders.items()
        }
        # A name neither built in nor in [vision.embedders] was refused when the file was read.
        return PipelineChoice(
            self.detector, embedder_named(self.embedder, custom), self.detection_min_confidence
        )


STANDARD_BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 2000000)


def _check_baudrate(baud: int) -> int:
    if baud not in STANDARD_BAUDRATES:
        raise ValueError(f"{baud} is not a standard rate: one of {', '.join(map(str, STANDARD_BAUDRATES))}")
    return baud


class GpioSection(Section):
    """The host computer's own GPIO lines: through gpiod on the robot, simulated anywhere else."""

    backend: Literal["simulated", "gpiod"] = "simulated"
    chip: str = Field(default="/dev/gpiochip0", min_length=1)


class HardwareSection(Section):
    """The devices: `backend = "mcu"` drives them through the microcontroller on `serial_url`; "simulated"
    runs them in-process, for tests and the demo."""

    backend: Literal["simulated", "mcu"] = "simulated"
    # validate_default: the check below must run when the key is absent, which is the mistake it catches.
    serial_url: str | None = Field(default=None, validate_default=True)
    baudrate: Annotated[int, AfterValidator(_check_baudrate)] = 115200
    gpio: GpioSection = GpioSection()

    @field_validator("serial_url")
    @classmethod
    def _mcu_needs_a_port(cls, url: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("backend") == "mcu" and not url:
            raise ValueError('needed when backend = "mcu": a device path or a pyserial URL')
        return url


class LoggingSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    file: WritablePath | None = None


class TicketsSection(Section):
    """How tickets shown to the camera are checked (docs/tickets.md, "Verification")."""

    trust_file: ProvisionedFile | None = Field(
        default=None,
        description="trust.json from `cloud-sync robot provision`: the signing keys before the first sync",
    )
    clock_tolerance_s: float = Field(default=300.0, ge=0, le=86_400)
    holder_window_s: float = Field(default=30.0, gt=0, le=3_600)
    debounce_s: float = Field(default=3.0, ge=0, le=600)
    scan: bool = True


UNIX_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with its NUL


class ApiSection(Section):
    """The local control API (robot_agent/api/): a unix socket for the engineers' UI and tools."""

    # The unix socket it listens on (mode 0660: its owner and its group may connect).
    socket: ResolvedPath = Field(default=Path("var/robot-agent.sock"), validate_default=True)
    # The fleet's card pepper (32 bytes, mode 0600, written by provisioning); without it engineers log in
    # by password only.
    card_key_file: ResolvedPath = Field(default=Path("var/card-pepper"), validate_default=True)
    session_idle_s: float = Field(default=600.0, gt=0, le=86_400)
    card_login_s: float = Field(default=20.0, gt=0, le=300)

    @field_validator("socket")
    @classmethod
    def _fits_a_socket_address(cls, path: Path) -> Path:
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise ValueError(f"a unix socket's path is at most {UNIX_PATH_MAX} bytes: {path} is longer")
        return path


class BehaviourSection(Section):
    """How the robot behaves with passengers (robot_agent/behaviour/): the language it speaks, how long it
    waits, how long the gate opens."""

    # Russian by default: the seed's railway and its passengers are Russian-speaking.
    language: Literal["ru", "en"] = "ru"
    # A passenger engaged (a face in view) who shows no ticket is let go this long after last seen.
    engaged_timeout_s: float = Field(default=20.0, gt=0, le=600)
    # A code read, or a passenger recognised, whose check gives no verdict this soon: ask for the code.
    identify_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # How long a verdict shows (its lights too, up to the MCU's 60 s) before the robot is idle again.
    verdict_s: float = Field(default=6.0, gt=0, le=60)
    gate_pulse_ms: int = Field(default=3000, ge=1, le=10_000)
    # How many hotels, and how many attractions, at the destination a passenger let in is told of.
    places: int = Field(default=3, ge=0, le=10)


class RobotConfig(Section):
    """The whole of robot.toml."""

    robot: RobotSection
    assignment: AssignmentSection
    cloud: CloudSection
    storage: StorageSection
    camera: CameraSection
    # Validated from {} when the file has no [vision], so that its default paths follow the TOML's folder.
    vision: VisionSection = Field(default_factory=dict, validate_default=True)
    tickets: TicketsSection = TicketsSection()
    hardware: HardwareSection
    behaviour: BehaviourSection = BehaviourSection()
    logging: LoggingSection = LoggingSection()
    # Validated from {} when the file has no [api], so that its default paths follow the TOML's folder.
    api: ApiSection = Field(default_factory=dict, validate_default=True)


# -- loading ----------------------------------------------------------------------------------------------


def load_config(
    path: Path, *, key_may_be_missing: bool = False, provisioned_may_be_missing: bool = False
) -> RobotConfig:
    """Read, parse and validate a robot.toml; raise ConfigError naming every bad key.

    `key_may_be_missing`: [robot] key_file may be absent (`keys init` makes it). `provisioned_may_be_missing`:
    so may [cloud] credentials_file and [tickets] trust_file (`cloud-sync robot provision` writes them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(path, [ConfigProblem("", "configuration file not found")]) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(path, [ConfigProblem("", f"cannot read: {err}")]) from err
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(path, [ConfigProblem("", f"not valid TOML: {err}")]) from err
    return parse_config(
        raw,
        path,
        key_may_be_missing=key_may_be_missing,
        provisioned_may_be_missing=provisioned_may_be_missing,
    )


def parse_config(
    raw: Mapping[str, Any],
    path: Path,
    *,
    key_may_be_missing: bool = False,
    provisioned_may_be_missing: bool = False,
) -> RobotConfig:
    """Validate already-parsed TOML; relative paths are taken from `path`'s directory."""
    context = {
        "base_dir": path.resolve().parent,
        "key_may_be_missing": key_may_be_missing,
        "provisioned_may_be_missing": provisioned_may_be_missing,
    }
    try:
        # Through JSON so that strict mode accepts strings for paths and UUIDs, yet no string for a number.
        return RobotConfig.model_validate_json(json.dumps(raw, default=str), strict=True, context=context)
    except ValidationError as err:
        raise ConfigError(path, [_problem(error) for error in err.errors()]) from err


def _problem(error: ErrorDetails) -> ConfigProblem:
    key, model = _key_path(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return ConfigProblem(key, _unknown_key_message(key.rsplit(".", 1)[-1], model))
    if kind == "missing":
        return ConfigProblem(key, "missing required key")
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return ConfigProblem(
            f"{key}.type" if key else "type",
            f"unknown type {ctx.get('tag')!r}: expected one of {ctx.get('expected_tags')}",
        )
    if kind == "union_tag_not_found":
        return ConfigProblem(f"{key}.type" if key else "type", "missing required key")
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if kind.endswith("_type") or kind.endswith("_parsing") or kind.startswith("literal") or kind == "enum":
        message = f"{message}, got {value!r}"
    return ConfigProblem(key, message)


def _key_path(loc: tuple[int | str, ...]) -> tuple[str, type[BaseModel] | None]:
    """The dotted TOML key of an error (no pydantic union tags), and the section owning its last part."""
    keys: list[str] = []
    candidates: list[type[BaseModel]] = [RobotConfig]
    owner: type[BaseModel] | None = RobotConfig
    named: list[type[BaseModel]] = []  # a table of tables ([vision.embedders]): the next key is a name
    for elem in loc:
        if elem == "[key]":  # pydantic's mark of a table's name that failed its check
            continue
        if named:
            keys.append(str(elem))
            candidates, named = named, []
            continue
        owner = candidates[0] if len(candidates) == 1 else None
        holder = next((m for m in candidates if elem in m.model_fields), None)
        if holder is not None:
            keys.append(str(elem))
            annotation = holder.model_fields[str(elem)].annotation
            if get_origin(annotation) is dict:
                named, candidates = _models_in(get_args(annotation)[1]), []
            else:
                candidates = _models_in(annotation)
            continue
        branch = [m for m in candidates if _tag_of(m) == elem]
        if branch:
            # A discriminated union names the branch it tried; that is no key of the file.
            candidates = branch
            continue
        keys.append(str(elem))
        candidates = []
    return ".".join(keys), owner


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for m in get_args(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _tag_of(model: type[BaseModel]) -> object:
    field = model.model_fields.get("type")
    args = get_args(field.annotation) if field is not None else ()
    return args[0] if len(args) == 1 else None


def _unknown_key_message(name: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown key"
    allowed = sorted(model.model_fields)
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; allowed here: {', '.join(allowed)}"
