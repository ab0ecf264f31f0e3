"""robot.toml → typed config: the example loads, and every kind of mistake is named by its key and file."""

from __future__ import annotations

import copy
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.faces.choice import PipelineChoice
from robot_agent.config import FolderSource, RobotConfig, load_config, parse_config
from robot_agent.errors import ConfigError
from robot_agent.identity import create_key_file
from tests.support.provisioned import write_provisioned_files

EXAMPLE = Path(__file__).resolve().parents[2] / "robot.toml"


@pytest.fixture
def robot_dir(tmp_path: Path) -> Path:
    """A folder holding a copy of the example robot.toml, the key it names and its provisioned files."""
    shutil.copy(EXAMPLE, tmp_path / "robot.toml")
    create_key_file(tmp_path / "var" / "robot.key")
    write_provisioned_files(tmp_path)
    return tmp_path


@pytest.fixture
def raw() -> dict[str, Any]:
    with EXAMPLE.open("rb") as f:
        return tomllib.load(f)


def problems(raw: dict[str, Any], robot_dir: Path) -> list[str]:
    """The problems parse_config reports, as `key: message` lines; fails if it reports none."""
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, robot_dir / "robot.toml")
    return [str(p) for p in caught.value.problems]


def test_the_example_loads_with_paths_resolved_from_its_folder(robot_dir: Path) -> None:
    config = load_config(robot_dir / "robot.toml")
    assert isinstance(config, RobotConfig)
    assert config.robot.key_file == robot_dir / "var" / "robot.key"
    assert config.storage.database == robot_dir / "var" / "robot.db"
    assert config.assignment.train_number == 742
    assert config.camera.source.type == "device"
    assert (config.cloud.host, config.cloud.port) == ("127.0.0.1", 1883)
    assert not config.vision.faces_enabled
    assert (config.hardware.backend, config.hardware.serial_url) == ("simulated", None)
    assert (config.hardware.gpio.backend, config.hardware.gpio.chip) == ("simulated", "/dev/gpiochip0")


def test_config_is_frozen(robot_dir: Path) -> None:
    config = load_config(robot_dir / "robot.toml")
    with pytest.raises(ValueError, match="frozen"):
        config.assignment.train_number = 1  # type: ignore[misc]


def test_unknown_key_is_named_with_a_suggestion(raw: dict[str, Any], robot_dir: Path) -> None:
    raw["camera"]["fsp"] = 30
    [line] = problems(raw, robot_dir)
    assert line.startswith("camera.fsp: unknown key (did you mean 'fps'?)")


def test_unknown_key_inside_a_camera_source_names_the_toml_key(raw: dict[str, Any], robot_dir: Path) -> None:
    (robot_dir / "frames").mkdir()
    raw["camera"]["source"] = {"type": "folder", "path": "frames", "looop": True}
    [line] = problems(raw, robot_dir)
    assert line.startswith("camera.source.looop: unknown key (did you mean 'loop'?)")


def test_unknown_section_is_named(raw: dict[str, Any], robot_dir: Path) -> None:
    raw["hardwre"] = {"backend": "simulated"}
    assert problems(raw, robot_dir)[0].startswith("hardwre: unknown key (did you mean 'hardware'?)")


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        (
            "assignment",
            "train_number",
            "742",
            "assignment.train_number: Input should be a valid integer, got '742'",
        ),
        ("camera", "fps", "fast", "camera.fps: Input should be a valid number, got 'fast'"),
        ("hardware", "backend", "real", "hardware.backend: Input should be 'simulated' or 'mcu', got 'real'"),
        ("robot", "id", "robot-1", "robot.id: Input should be a valid UUID"),
        ("assignment", "train_number", 0, "assignment.train_number: Input should be greater than 0"),
        ("hardware", "baudrate", 115201, "hardware.baudrate: 115201 is not a standard rate"),
        ("assignment", "timezone", "Mars/Olympus", "assignment.timezone: unknown time zone 'Mars/Olympus'"),
        ("cloud", "mqtt_url", "http://broker", "cloud.mqtt_url: expected mqtt://HOST[:PORT]"),
        ("cloud", "mqtt_url", "mqtt://u:p@broker", "cloud.mqtt_url: credentials do not belong in the URL"),
        ("logging", "level", "LOUD", "logging.level: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ],
)
def test_wrong_type_or_value_is_named(
    raw: dict[str, Any], robot_dir: Path, section: str, key: str, value: object, expected: str
) -> None:
    raw[section][key] = value
    [line] = problems(raw, robot_dir)
    assert line.startswith(expected), line


def test_missing_required_key_is_named(raw: dict[str, Any], robot_dir: Path) -> None:
    del raw["assignment"]["train_number"]
    assert problems(raw, robot_dir) == ["assignment.train_number: missing required key"]


def test_missing_section_is_named(raw: dict[str, Any], robot_dir: Path) -> None:
    del raw["cloud"]
    assert problems(raw, robot_dir) == ["cloud: missing required key"]


def test_missing_file_names_the_key_and_the_file(raw: dict[str, Any], robot_dir: Path) -> None:
    raw["cloud"]["credentials_file"] = "secrets/mqtt"
    [line] = problems(raw, robot_dir)
    assert line == (
        f"cloud.credentials_file: file not found: {robot_dir / 'secrets' / 'mqtt'} "
        "(`cloud-sync robot provision ROBOT_ID --out DIR` writes it)"
    )


def test_missing_key_file_says_how_to_make_one(raw: dict[str, Any], tmp_path: Path) -> None:
    line = problems(raw, tmp_path)[0]
    assert line.startswith(f"robot.key_file: file not found: {tmp_path / 'var' / 'robot.key'}")
    assert "robot-agent keys init" in line


def test_before_provisioning_the_files_it_writes_are_named_with_the_command(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "robot.toml")
    create_key_file(tmp_path / "var" / "robot.key")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "robot.toml")
    hint = "(`cloud-sync robot provision ROBOT_ID --out DIR` writes it)"
    assert [str(p) for p in caught.value.problems] == [
        f"cloud.credentials_file: file not found: {tmp_path / 'var' / 'mqtt-credentials'} {hint}",
        f"tickets.trust_file: file not found: {tmp_path / 'var' / 'trust.json'} {hint}",
    ]
    # What comes before provisioning (keys init, keys show, check-config) takes them as paths.
    config = load_config(tmp_path / "robot.toml", provisioned_may_be_missing=True)
    assert config.cloud.credentials_file == tmp_path / "var" / "mqtt-credentials"
    assert config.tickets.trust_file == tmp_path / "var" / "trust.json"
    # Named and there, they are checked as always: a directory is no file.
    (tmp_path / "var" / "trust.json").mkdir()
    with pytest.raises(ConfigError, match=r"tickets.trust_file: not a regular file"):
        load_config(tmp_path / "robot.toml", provisioned_may_be_missing=True)


def test_key_file_readable_by_others_is_refused(raw: dict[str, Any], robot_dir: Path) -> None:
    (robot_dir / "var" / "robot.key").chmod(0o644)
    [line] = problems(raw, robot_dir)
    assert line.startswith("robot.key_file: ")
    assert "mode 0644" in line


def test_missing_image_folder_is_named(raw: dict[str, Any], robot_dir: Path) -> None:
    raw["camera"]["source"] = {"type": "folder", "path": "frames"}
    assert problems(raw, robot_dir) == [f"camera.source.path: directory not found: {robot_dir / 'frames'}"]


def test_camera_sources_are_chosen_by_type(raw: dict[str, Any], robot_dir: Path) -> None:
    (robot_dir / "frames").mkdir()
    raw["camera"]["source"] = {"type": "folder", "path": "frames", "pattern": "*.jpg"}
    config = parse_config(raw, robot_dir / "robot.toml")
    assert config.camera.source == FolderSource(type="folder", path=robot_dir / "frames", pattern="*.jpg")


def test_unknown_camera_type_lists_the_known_ones(raw: dict[str, Any], robot_dir: Path) -> None:
    raw["camera"]["source"] = {"type": "webcam"}
    [line] = problems(raw, robot_dir)
    assert line.startswith("camera.source.type: unknown type 'webcam'")
    assert all(kind in line for kind in ("device", "file", "rtsp", "folder"))


def test_the_mcu_backend_needs_a_serial_port(raw: dict[str, Any], robot_dir: Path) -> None:
    raw["hardware"]["backend"] = "mcu"
    assert problems(raw, robot_dir) == [
        'hardware.serial_url: needed when backend = "mcu": a device path or a pyserial URL'
    ]
    raw["hardware"]["serial_url"] = "/dev/ttyACM0"
    hardware = parse_config(raw, robot_dir / "robot.toml").hardware
    assert (hardware.backend, hardware.serial_url, hardware.baudrate) == ("mcu", "/dev/ttyACM0", 115200)


def test_the_old_simulated_key_is_named_with_what_replaced_it(raw: dict[str, Any], robot_dir: Path) -> None:
    raw["hardware"]["simulated"] = True
    [line] = problems(raw, robot_dir)
    assert line == "hardware.simulated: unknown key; allowed here: backend, baudrate, gpio, serial_url"


@pytest.mark.parametrize(
    ("gpio", "expected"),
    [
        ({"backend": "sysfs"}, "hardware.gpio.backend: Input should be 'simulated' or 'gpiod', got 'sysfs'"),
        ({"chip": ""}, "hardware.gpio.chip: String should have at least 1 character"),
        ({"chips": "/dev/gpiochip1"}, "hardware.gpio.chips: unknown key (did you mean 'chip'?)"),
    ],
)
def test_gpio_mistakes_are_named(
    raw: dict[str, Any], robot_dir: Path, gpio: dict[str, str], expected: str
) -> None:
    raw["hardware"]["gpio"].update(gpio)
    [line] = problems(raw, robot_dir)
    assert line.startswith(expected), line


def test_gpio_section_may_be_left_out(raw: dict[str, Any], robot_dir: Path) -> None:
    del raw["hardware"]["gpio"]
    raw["hardware"]["backend"] = "mcu"
    raw["hardware"]["serial_url"] = "socket://127.0.0.1:7000"
    assert parse_config(raw, robot_dir / "robot.toml").hardware.gpio.backend == "simulated"


def test_faces_default_to_the_pipelines_choice_and_their_files_need_not_exist(
    raw: dict[str, Any], robot_dir: Path
) -> None:
    vision: dict[str, Any]
    for vision in (raw["vision"], {}):
        config = parse_config({**raw, "vision": vision}, robot_dir / "robot.toml").vision
        assert config.choice == PipelineChoice()
        assert (config.match_max_distance, config.match_min_margin, config.faces_enabled) == (
            None,
            0.0,
            False,
        )
        # Checked when face features start (robot_agent/faces/key.py), so that QR tickets work without them.
        assert config.face_key_file == robot_dir / "var" / "faces.key"
        assert not config.face_key_file.exists()


def test_the_detector_and_embedder_are_named_from_the_pipelines_choices(
    raw: dict[str, Any], robot_dir: Path
) -> None:
    raw["vision"] |= {"detector": "blazeface_full", "embedder": "dlib_resnet_v1"}
    assert parse_config(raw, robot_dir / "robot.toml").vision.choice.files() == (
        "face_detection_full_range_sparse.tflite",
        "dlib_resnet_v1.onnx",
    )
    raw["vision"]["embedder"] = "arcface"
    [line] = problems(raw, robot_dir)
    assert line == (
        "vision.embedder: unknown embedder 'arcface': one of sface, dlib_resnet_v1 (a name of your own "
        "needs a [vision.embedders.arcface] table)"
    )


@pytest.mark.parametrize(("embedder", "limit"), [("sface", "0.530"), ("dlib_resnet_v1", "0.500")])
def test_match_max_distance_may_only_make_matching_stricter(
    raw: dict[str, Any], robot_dir: Path, embedder: str, limit: str
) -> None:
    raw["vision"] |= {"embedder": embedder, "match_max_distance": 0.45}
    assert parse_config(raw, robot_dir / "robot.toml").vision.match_max_distance == 0.45
    raw["vision"]["match_max_distance"] = 0.65
    [line] = problems(raw, robot_dir)
    assert line == (
        f"vision.match_max_distance: 0.65 is above the {embedder} embedder's own threshold {limit}: this key "
        "may only make matching stricter (leave it out to use the embedder's)"
    )


def test_the_model_directory_is_taken_from_the_toml_folder_and_need_not_exist(
    raw: dict[str, Any], robot_dir: Path
) -> None:
    assert parse_config(raw, robot_dir / "robot.toml").vision.models_dir == robot_dir / "var" / "models"
    raw["vision"]["models_dir"] = "/srv/models"
    assert parse_config(raw, robot_dir / "robot.toml").vision.models_dir == Path("/srv/models")
    # Without [vision] at all, the default still follows the file, not the folder the agent was started in.
    del raw["vision"]
    assert parse_config(raw, robot_dir / "robot.toml").vision.models_dir == robot_dir / "var" / "models"
    raw["vision"] = {"models_dir": 5}
    assert problems(raw, robot_dir) == ["vision.models_dir: expected a path, got 5"]


def test_tls_needs_mqtts(raw: dict[str, Any], robot_dir: Path) -> None:
    (robot_dir / "ca.pem").write_text("ca")
    raw["cloud"]["tls"] = {"ca_file": "ca.pem"}
    assert problems(raw, robot_dir) == ["cloud: a [cloud.tls] section needs an mqtts:// URL"]


def test_every_problem_is_reported_at_once(raw: dict[str, Any], robot_dir: Path) -> None:
    raw["camera"]["fps"] = -1
    raw["storage"]["databse"] = "x.db"
    del raw["robot"]["id"]
    keys = sorted(line.split(":")[0] for line in problems(raw, robot_dir))
    assert keys == ["camera.fps", "robot.id", "storage.databse"]


def test_toml_syntax_error_names_the_line(robot_dir: Path) -> None:
    path = robot_dir / "robot.toml"
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if line.startswith("train_number"))
    lines[number - 1] = "train_number = = 742"
    path.write_text("\n".join(lines))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert "not valid TOML" in problem.message
    assert f"line {number}," in problem.message
    assert str(caught.value).startswith(f"{path}: not valid TOML")


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found") as caught:
        load_config(tmp_path / "nope.toml")
    assert str(caught.value).startswith(str(tmp_path / "nope.toml"))


TOML_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)


def _scalar_paths(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, value in node.items():
        if isinstance(value, dict):
            paths += _scalar_paths(value, (*prefix, key))
        else:
            paths.append((*prefix, key))
    return paths


def _example_raw() -> dict[str, Any]:
    with EXAMPLE.open("rb") as f:
        return tomllib.load(f)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_anywhere_loads_or_names_that_key(robot_dir: Path, data: st.DataObject) -> None:
    raw = copy.deepcopy(_example_raw())
    path = data.draw(st.sampled_from(_scalar_paths(raw)))
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = data.draw(TOML_SCALARS)
    try:
        parse_config(raw, robot_dir / "robot.toml")
    except ConfigError as err:
        reported = [str(p) for p in err.problems]
    else:
        return
    dotted = ".".join(path)
    assert reported
    for line in reported:
        # The changed key, or (for a check across keys) its section.
        assert line.startswith((f"{dotted}:", f"{dotted}.", f"{'.'.join(path[:-1])}:")), reported


def test_the_api_socket_path_must_fit_a_unix_socket_address(raw: dict[str, Any], robot_dir: Path) -> None:
    config = load_config(robot_dir / "robot.toml")
    assert config.api.socket == robot_dir / "var" / "robot-agent.sock"
    assert config.api.card_key_file == robot_dir / "var" / "card-pepper"
    raw["api"]["socket"] = "s" * 120 + ".sock"
    [line] = problems(raw, robot_dir)
    assert line.startswith("api.socket: ")
    assert "at most 107 bytes" in line
