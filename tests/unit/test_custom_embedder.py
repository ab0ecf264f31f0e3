"""An operator's own ONNX embedder (models/faces/custom.py): a `[vision.embedders.NAME]` table in robot.toml,
and the same table in the cloud's `--face-embedders-file`. Every mistake is named by its key when the file
is read; the file itself, and its sha256, when faces start, naming the path, the table and both digests."""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from pathlib import Path
from typing import Any, Final

import pytest

from cloud_sync.cli import build_parser
from cloud_sync.errors import CloudSyncError
from models.faces.align import ARCFACE_112
from models.faces.choice import PipelineChoice
from models.faces.custom import CustomEmbedder, CustomEmbedderError, parse_embedders_file
from models.faces.embed import SFACE
from robot_agent.config import parse_config
from robot_agent.errors import FacesError
from robot_agent.faces.configured import open_face_pipeline
from tests.support.face_files import MODELS_DIR, model_bytes
from tests.unit import test_config
from tests.unit.test_config import EXAMPLE, problems

YUNET: Final = "face_detection_yunet_2023mar_int8bq.onnx"
DIGEST = "ab" * 32

# test_config's fixtures: a folder holding a copy of the example robot.toml and its files; its parsed TOML.
robot_dir = test_config.robot_dir
raw = test_config.raw


def table(**changes: Any) -> dict[str, Any]:
    """SFace's spec values as a table, for a file at models/mine.onnx."""
    values: dict[str, Any] = {
        "path": "models/mine.onnx",
        "sha256": DIGEST,
        "template": "arcface_112",
        "channels": "rgb",
        "layout": "nchw",
        "mean": [0, 0, 0],
        "scale": 1.0,
        "metric": "cosine",
        "threshold": 0.53,
    }
    return {key: value for key, value in (values | changes).items() if value is not None}


def with_mine(raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    raw["vision"] |= {"embedders": {"mine": table(**changes)}, "embedder": "mine"}
    return raw


def test_a_table_adds_an_embedder_that_vision_names(raw: dict[str, Any], robot_dir: Path) -> None:
    choice = parse_config(with_mine(raw), robot_dir / "robot.toml").vision.choice
    assert choice.embedder == CustomEmbedder(
        dataclasses.replace(SFACE, name="mine"),
        robot_dir / "models" / "mine.onnx",  # from the TOML's folder, and need not exist yet
        DIGEST,
        "[vision.embedders.mine]",
    )
    assert choice.spec.name == "mine"
    assert choice.files() == (YUNET,)  # the embedder's file is its own, not the model directory's
    # Without `embedder = "mine"` the table is kept, and the built-in embedder runs.
    del raw["vision"]["embedder"]
    assert parse_config(raw, robot_dir / "robot.toml").vision.choice == PipelineChoice()


def test_a_template_may_be_given_as_its_size_and_five_points(raw: dict[str, Any], robot_dir: Path) -> None:
    points = [list(ARCFACE_112.points[name]) for name in list(ARCFACE_112.points)[:5]]
    spec = parse_config(
        with_mine(raw, template={"size": 112, "points": points}, sha256=DIGEST.upper()),
        robot_dir / "robot.toml",
    ).vision.choice.spec
    assert (spec.template.name, spec.size, dict(spec.template.points)) == ("mine", 112, ARCFACE_112.points)
    assert spec.threshold == 0.53


def test_the_commented_example_in_robot_toml_reads(raw: dict[str, Any], robot_dir: Path) -> None:
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index("# [vision.embedders.my_arcface]")
    example = []
    for line in lines[start + 1 :]:
        if not line.startswith("# "):
            break
        example.append(line.removeprefix("# ").replace('"..."', f'"{DIGEST}"'))
    raw["vision"] |= {
        "embedders": {"my_arcface": tomllib.loads("\n".join(example))},
        "embedder": "my_arcface",
    }
    spec = parse_config(raw, robot_dir / "robot.toml").vision.choice.spec
    assert (spec.name, spec.template, spec.mean, spec.scale, spec.metric, spec.threshold) == (
        "my_arcface",
        ARCFACE_112,
        (127.5, 127.5, 127.5),
        0.0078125,
        "cosine",
        0.4,
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"threshold": None},
            "vision.embedders.mine.threshold: missing required key",
        ),
        (
            {"sha256": None},
            "vision.embedders.mine.sha256: missing required key",
        ),
        (
            {"sha256": "d41d8cd98f00b204e9800998ecf8427e"},
            "vision.embedders.mine.sha256: expected the file's sha256, 64 hex digits as `sha256sum FILE` "
            "prints, got 'd41d8cd98f00b204e9800998ecf8427e'",
        ),
        (
            {"template": "arcface_128"},
            "vision.embedders.mine.template: unknown template 'arcface_128': one of arcface_112, dlib_150, "
            "or a table of size and five points",
        ),
        (
            {"template": {"size": 112, "points": [[1, 2]] * 4}},
            "vision.embedders.mine.template: template points: five [x, y] in the chip's pixels (the person's "
            "right eye, left eye, nose tip, right and left mouth corner, as arcface_112 has them), got "
            "[[1, 2], [1, 2], [1, 2], [1, 2]]",
        ),
        (
            {"template": {"size": 112, "points": [[120, 50]] * 5}},
            "vision.embedders.mine.template: template points must lie inside the 112x112 chip, got "
            "[[120, 50], [120, 50], [120, 50], [120, 50], [120, 50]]",
        ),
        (
            {"metric": "manhattan"},
            "vision.embedders.mine.metric: Input should be 'l2' or 'cosine', got 'manhattan'",
        ),
        (
            {"threshold": 2.5},
            "vision.embedders.mine.threshold: 2.5 accepts every face: a cosine distance is below 2",
        ),
        (
            {"treshold": 0.5},
            "vision.embedders.mine.treshold: unknown key (did you mean 'threshold'?); allowed here: "
            "channels, layout, mean, metric, path, scale, sha256, template, threshold",
        ),
    ],
)
def test_each_mistake_in_a_table_is_named_by_its_key(
    raw: dict[str, Any], robot_dir: Path, changes: dict[str, Any], expected: str
) -> None:
    assert problems(with_mine(raw, **changes), robot_dir) == [expected]


def test_the_built_in_names_are_reserved(raw: dict[str, Any], robot_dir: Path) -> None:
    raw["vision"]["embedders"] = {"sface": table()}
    assert problems(raw, robot_dir) == [
        "vision.embedders.sface: 'sface' is a built-in embedder's name (sface, dlib_resnet_v1): give yours "
        "another, so that faces it embeds are never compared with the built-in one's"
    ]


def test_an_unknown_embedder_is_refused_naming_the_known_ones(raw: dict[str, Any], robot_dir: Path) -> None:
    with_mine(raw)["vision"]["embedder"] = "arcface"
    assert problems(raw, robot_dir) == [
        "vision.embedder: unknown embedder 'arcface': one of sface, dlib_resnet_v1, mine (a name of your own "
        "needs a [vision.embedders.arcface] table)"
    ]


def test_match_max_distance_may_only_make_a_tables_threshold_stricter(
    raw: dict[str, Any], robot_dir: Path
) -> None:
    with_mine(raw, threshold=0.3)["vision"]["match_max_distance"] = 0.4
    assert problems(raw, robot_dir) == [
        "vision.match_max_distance: 0.4 is above the mine embedder's own threshold 0.300: this key may only "
        "make matching stricter (leave it out to use the embedder's)"
    ]


def test_a_missing_file_or_another_file_is_refused_when_faces_start(
    raw: dict[str, Any], robot_dir: Path
) -> None:
    model_bytes(YUNET)  # the detector comes from set-up's model directory (fails naming `make setup`)
    raw["vision"]["models_dir"] = str(MODELS_DIR)
    vision = parse_config(with_mine(raw), robot_dir / "robot.toml").vision
    path = robot_dir / "models" / "mine.onnx"
    with pytest.raises(FacesError) as missing:
        open_face_pipeline(vision)
    assert str(missing.value) == (
        f"face features cannot start: {path}: missing (the path [vision.embedders.mine] gives); put the file "
        "there or fix [vision.embedders.mine]"
    )

    path.parent.mkdir()
    path.write_bytes(b"not the model pinned")
    actual = hashlib.sha256(b"not the model pinned").hexdigest()
    with pytest.raises(FacesError) as other:
        open_face_pipeline(vision)
    assert str(other.value) == (
        f"face features cannot start: {path}: sha256 {actual}, but [vision.embedders.mine] pins {DIGEST}; "
        "put the pinned file back; a different model is a new embedder: give it its own table, name and "
        "threshold, so that faces it embeds are not compared with the old one's"
    )


def test_the_clouds_file_holds_the_same_tables(tmp_path: Path) -> None:
    source = str(tmp_path / "embedders.toml")
    [(name, embedder)] = parse_embedders_file({"embedders": {"mine": table()}}, tmp_path, source).items()
    assert (name, embedder.spec, embedder.path) == (
        "mine",
        dataclasses.replace(SFACE, name="mine"),
        tmp_path / "models" / "mine.onnx",
    )
    assert embedder.key == f"[embedders.mine] of {source}"

    wrong = {"embedders": {"mine": table(threshold=None), "sface": table()}, "vision": {}}
    with pytest.raises(CustomEmbedderError) as caught:
        parse_embedders_file(wrong, tmp_path, source)
    assert caught.value.problems == [
        "embedders.mine.threshold: missing required key",
        "embedders.sface: 'sface' is a built-in embedder's name (sface, dlib_resnet_v1): give yours another, "
        "so that faces it embeds are never compared with the built-in one's",
        "vision: unknown key; allowed here: embedders",
    ]
    assert str(caught.value).startswith(f"{source}: embedders.mine.threshold: missing required key; ")


def test_cloud_sync_serve_reads_the_file_and_may_name_its_embedders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "embedders.toml"
    file.write_text(
        '[embedders.mine]\npath = "mine.onnx"\nsha256 = "' + DIGEST + '"\ntemplate = "dlib_150"\n'
    )
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--face-embedders-file", str(file)])
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"cloud-sync serve: error: argument --face-embedders-file: {file}: embedders.mine.metric: missing "
        f"required key; {file}: embedders.mine.threshold: missing required key"
    )

    with file.open("a") as out:
        out.write('metric = "l2"\nthreshold = 0.5\n')
    args = parser.parse_args(["serve", "--face-embedders-file", str(file), "--face-embedder", "arcface"])
    [(name, mine)] = args.face_embedders_file.items()
    assert (name, mine.path, mine.spec.template.name) == ("mine", tmp_path / "mine.onnx", "dlib_150")
    with pytest.raises(CloudSyncError) as caught:
        args.handler(args)
    assert (
        str(caught.value) == "--face-embedder: unknown embedder 'arcface': one of sface, dlib_resnet_v1, mine"
    )
