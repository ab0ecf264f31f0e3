"""`robot-agent faces enroll|identify|list|delete`, run as a user runs them, on set-up's models and real
photos: a passenger enrolled from one photo is named in another, strangers are not, a corrupt index is
rebuilt, and deleting leaves no trace in the robot's files. Without the models or the face key, face commands
refuse in one line naming the command to run, and the rest of the agent (tickets) works on."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from models.faces.embed import SFACE
from tests.support.face_files import MODELS_DIR, face_photo_path, model_path
from tests.support.provisioned import write_provisioned_files

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).resolve().parents[2] / "robot.toml"
OBAMA = "0b0b0b0b-0000-4000-8000-000000000001"


def agent(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "robot-agent"), "--config", "robot.toml", *args],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
        check=False,
    )


def robot_folder(folder: Path, models_dir: Path = MODELS_DIR) -> Path:
    """A robot's folder: the example robot.toml with its models in `models_dir`, and its keys."""
    text = EXAMPLE.read_text().replace('models_dir = "var/models"', f'models_dir = "{models_dir}"')
    (folder / "robot.toml").write_text(text)
    assert agent(folder, "keys", "init").returncode == 0
    return folder


def identified(folder: Path, photo: str) -> dict[str, Any]:
    result = agent(folder, "faces", "identify", str(face_photo_path(photo)))
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def listed(folder: Path) -> list[dict[str, str]]:
    result = agent(folder, "faces", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, str]] = json.loads(result.stdout)
    return rows


@pytest.fixture(scope="module")
def robot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return robot_folder(tmp_path_factory.mktemp("robot"))


def test_enrol_identify_list_and_delete(robot: Path) -> None:
    obama, t1 = face_photo_path("obama.jpg"), face_photo_path("t1.jpg")
    enrolled = agent(robot, "faces", "enroll", "--user-id", OBAMA, str(obama), str(t1))
    # One photo of two was refused: the other is kept, the exit status says not all went in.
    assert enrolled.returncode == 1
    summary = json.loads(enrolled.stdout)
    [face] = summary["enrolled"]
    assert (summary["user_id"], face["image"]) == (OBAMA, str(obama))
    assert summary["refused"] == [
        {
            "image": str(t1),
            "reason": "several_faces",
            "detail": "6 faces of comparable size; a photo must show one person",
        }
    ]
    progress = [line for line in enrolled.stderr.splitlines() if line.startswith("[")]
    assert progress == [
        f"[1/2] {obama}: accepted",
        f"[2/2] {t1}: refused: several_faces (6 faces of comparable size; a photo must show one person)",
    ]
    assert (
        enrolled.stderr.splitlines()[-1]
        == f"robot-agent: 1 of 2 images refused (1 enrolled for user {OBAMA})"
    )

    [row] = listed(robot)
    assert (row["user_id"], row["face_id"], row["embedder"], row["source"]) == (
        OBAMA,
        face["face_id"],
        "sface",
        "local",
    )
    assert set(row) == {"user_id", "face_id", "embedder", "source", "created_at"}  # never a vector

    again = identified(robot, "obama2.jpg")
    assert (again["embedder"], again["threshold"], again["enrolled"]) == ("sface", SFACE.threshold, 1)
    [seen] = again["faces"]
    assert (seen["user_id"], seen["verdict"]) == (OBAMA, "match")
    assert 0 < seen["distance"] < SFACE.threshold
    assert seen["margin"] is None
    assert set(seen["box"]) == {"x", "y", "w", "h"}

    [biden] = identified(robot, "biden.jpg")["faces"]
    assert (biden["user_id"], biden["verdict"]) == (None, "too_far")
    assert biden["distance"] > SFACE.threshold
    assert OBAMA not in json.dumps(biden)  # an unknown face never names the nearest passenger

    crowd = identified(robot, "t1.jpg")["faces"]
    assert len(crowd) == 6
    assert {face["user_id"] for face in crowd} == {None}

    deleted = agent(robot, "faces", "delete", "--user-id", OBAMA)
    assert (deleted.returncode, deleted.stdout) == (0, f"deleted 1 face of user {OBAMA}\n")
    assert listed(robot) == []
    assert identified(robot, "obama2.jpg")["faces"][0]["user_id"] is None


def test_a_corrupt_index_is_rebuilt_and_deleting_leaves_no_trace(tmp_path: Path) -> None:
    robot = robot_folder(tmp_path)
    photos = [str(face_photo_path(name)) for name in ("obama.jpg", "obama3.jpg")]
    assert agent(robot, "faces", "enroll", "--user-id", OBAMA, *photos).returncode == 0
    database, index = robot / "var" / "robot.db", robot / "var" / "faces.hnsw"
    sealed = [row[0] for row in sqlite3.connect(database).execute("SELECT embedding FROM faces")]
    assert len(sealed) == 2
    data = bytearray(index.read_bytes())
    data[-20] ^= 0xFF
    index.write_bytes(bytes(data))

    result = agent(robot, "faces", "identify", photos[0])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["faces"][0]["user_id"] == OBAMA
    assert (
        f"face index {index} is corrupt or sealed with another key (it does not open): rebuilding it "
        "from the database" in result.stderr
    )
    assert f"face index {index} rebuilt: 2 faces (exact)" in result.stderr

    assert agent(robot, "faces", "delete", "--user-id", OBAMA).returncode == 0
    kept = b"".join(path.read_bytes() for path in (robot / "var").iterdir() if path.is_file())
    assert not [row for row in sealed if row[13:29] in kept]
    assert (
        not (robot / "var" / "robot.db-wal").exists() or (robot / "var" / "robot.db-wal").stat().st_size == 0
    )


def test_an_embedder_of_ones_own_enrols_and_identifies_under_its_name(tmp_path: Path) -> None:
    # Set-up's SFace file, configured as the operator's own embedder with SFace's spec values.
    robot = robot_folder(tmp_path)
    sface = model_path("sface_2021dec_fp32.onnx")
    config = robot / "robot.toml"
    text = config.read_text().replace('embedder = "sface"', 'embedder = "my_sface"', 1)
    config.write_text(
        f"""{text}
[vision.embedders.my_sface]
path = "{sface}"
sha256 = "{hashlib.sha256(sface.read_bytes()).hexdigest()}"
template = "arcface_112"
channels = "rgb"
layout = "nchw"
mean = [0, 0, 0]
scale = 1.0
metric = "cosine"
threshold = {SFACE.threshold}
"""
    )
    enrolled = agent(robot, "faces", "enroll", "--user-id", OBAMA, str(face_photo_path("obama.jpg")))
    assert enrolled.returncode == 0, enrolled.stderr

    again = identified(robot, "obama2.jpg")
    assert (again["embedder"], again["threshold"], again["enrolled"]) == ("my_sface", SFACE.threshold, 1)
    [seen] = again["faces"]
    assert (seen["user_id"], seen["verdict"]) == (OBAMA, "match")
    assert 0 < seen["distance"] < SFACE.threshold
    stored = sqlite3.connect(robot / "var" / "robot.db").execute("SELECT embedder FROM faces").fetchall()
    assert stored == [("my_sface",)]


def test_without_the_face_key_face_commands_refuse_and_say_how_to_make_it(tmp_path: Path) -> None:
    robot = robot_folder(tmp_path)
    key = robot / "var" / "faces.key"
    key.chmod(0o644)
    refused = agent(robot, "faces", "identify", str(face_photo_path("obama.jpg")))
    assert refused.returncode == 1
    assert (
        refused.stderr.splitlines()[-1]
        == f"robot-agent: {key} is readable by others (mode 0644); run `chmod 600` on it"
    )
    key.unlink()
    refused = agent(robot, "faces", "enroll", "--user-id", OBAMA, str(face_photo_path("obama.jpg")))
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        f"robot-agent: face key file not found: {key} (create it with `robot-agent keys init`)"
    )
    assert "Traceback" not in refused.stderr
    assert agent(robot, "faces", "list").returncode == 0  # listing needs no key


def test_without_the_models_faces_refuse_and_tickets_work_on(tmp_path: Path) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    robot = tmp_path / "robot"
    robot.mkdir()
    robot_folder(robot, empty)
    refused = agent(robot, "faces", "enroll", "--user-id", OBAMA, str(face_photo_path("obama.jpg")))
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        f"robot-agent: face features cannot start: {empty / 'manifest.json'}: no manifest (nothing was "
        "fetched here), so face_detection_yunet_2023mar_int8bq.onnx, sface_2021dec_fp32.onnx cannot be "
        f"checked; run `robot-agent models fetch --models-dir {empty}`, then `robot-agent models build "
        f"--models-dir {empty}` (`make setup` runs both)"
    )
    # The rest of the agent does not need them: the configuration is good, and a ticket gets its verdict.
    write_provisioned_files(robot)
    assert agent(robot, "check-config").returncode == 0
    checked = agent(robot, "verify-ticket", "RB1:not-a-ticket")
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["verdict"] != "valid"
    assert "face" not in checked.stderr


def test_a_user_id_must_be_a_uuid(robot: Path) -> None:
    result = agent(robot, "faces", "delete", "--user-id", "obama")
    assert result.returncode == 2
    assert "argument --user-id: 'obama' is not a user id (a UUID)" in result.stderr


def test_an_image_that_cannot_be_read_is_named_before_anything_is_enrolled(
    robot: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nobody.jpg"
    before = listed(robot)
    result = agent(
        robot, "faces", "enroll", "--user-id", OBAMA, str(face_photo_path("obama.jpg")), str(missing)
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"robot-agent: cannot read {missing}: No such file or directory"
    assert listed(robot) == before
    (tmp_path / "note.jpg").write_text("not a photo")
    result = agent(robot, "faces", "identify", str(tmp_path / "note.jpg"))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(f"robot-agent: {tmp_path / 'note.jpg'}: not an image")
