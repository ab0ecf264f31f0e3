"""The robot's matcher on real faces and a real SQLite file: enrolled faces are recognised in other photos and
strangers are not; the index file is rebuilt when missing, corrupt or sealed with another key, brought up to
date when stale; a wrong key is a clear error; the database and index files never hold an embedding in the
clear, and deleting a passenger leaves no trace in them; nothing biometric is logged.

Three identities (Obama in three photos, Biden, t1.jpg's six strangers): this shows the matcher works on real
faces, not how accurate it is (the bench's evaluation says that).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import Engine, select

from models.faces.choice import PipelineChoice
from models.faces.identify import Verdict
from models.faces.image import decode_image
from models.faces.pipeline import Enrolled, FacePipeline
from robot_agent.errors import FacesError
from robot_agent.faces import records
from robot_agent.faces.index import EXACT_BELOW
from robot_agent.faces.index_file import MAGIC, read_index_file
from robot_agent.faces.key import create_face_key, load_face_key
from robot_agent.faces.matcher import Matcher
from robot_agent.faces.sealing import FaceKey
from robot_agent.store.database import open_store
from tests.support.face_files import face_photo, model_bytes

OBAMA, BIDEN = uuid.UUID(int=1), uuid.UUID(int=2)
CHOICE = PipelineChoice()


@pytest.fixture(scope="module")
def pipeline() -> Iterator[FacePipeline]:
    with CHOICE.build(model_bytes) as made:
        yield made


@pytest.fixture(scope="module")
def embedding(pipeline: FacePipeline) -> dict[str, NDArray[np.float32]]:
    """The one face's embedding of each portrait, as enrolment makes it."""
    found = {}
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"):
        enrolled = pipeline.enrol_image(face_photo(name))
        assert isinstance(enrolled, Enrolled), enrolled
        found[name] = enrolled.embedding
    return found


@pytest.fixture(scope="module")
def strangers(pipeline: FacePipeline) -> list[NDArray[np.float32]]:
    faces = pipeline.faces(decode_image(face_photo("t1.jpg")))
    assert len(faces) == 6
    return [face.embedding for face in faces]


@pytest.fixture
def robot(tmp_path: Path) -> Iterator[tuple[Engine, Path, Path]]:
    """The robot's database, face key and index file, in a fresh folder."""
    store = open_store(tmp_path / "robot.db")
    create_face_key(tmp_path / "faces.key")
    yield store, tmp_path / "faces.key", tmp_path / "faces.hnsw"
    store.dispose()


def matcher(
    robot: tuple[Engine, Path, Path], *, key: FaceKey | None = None, exact_below: int = EXACT_BELOW
) -> Matcher:
    store, key_file, index_file = robot
    return Matcher(store, key or load_face_key(key_file), CHOICE.spec, index_file, exact_below=exact_below)


def files_bytes(folder: Path) -> bytes:
    """Everything the robot keeps on disk there: the database, its write-ahead log, the index file."""
    return b"".join(path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file())


def pieces(*vectors: NDArray[np.float32]) -> list[bytes]:
    """Embeddings' float32 bytes in 16-byte pieces: any one in a file would be a copy in the clear."""
    raws = [np.asarray(vector, "<f4").tobytes() for vector in vectors]
    return [raw[i : i + 16] for raw in raws for i in range(0, len(raw), 16)]


@pytest.mark.parametrize("exact_below", [EXACT_BELOW, 0], ids=["exact", "hnsw"])
def test_an_enrolled_passenger_is_recognised_and_strangers_are_not(
    robot: tuple[Engine, Path, Path],
    embedding: dict[str, NDArray[np.float32]],
    strangers: list[NDArray[np.float32]],
    exact_below: int,
) -> None:
    faces = matcher(robot, exact_below=exact_below)
    [row] = faces.enrol(OBAMA, [embedding["obama.jpg"]])
    assert (row.user_id, row.embedder, row.source) == (OBAMA, "sface", "local")
    assert faces.kind == ("exact" if exact_below else "hnsw")
    for name in ("obama2.jpg", "obama3.jpg"):
        who = faces.identify(embedding[name])
        assert (who.verdict, who.identity) == (Verdict.MATCH, OBAMA), name
        assert who.distance < 0.637
    biden = faces.identify(embedding["biden.jpg"])
    assert (biden.verdict, biden.identity) == (Verdict.TOO_FAR, None)  # nearest is Obama; he is not named
    assert biden.distance > 0.637
    for stranger in strangers:
        assert faces.identify(stranger).identity is None
    # A second passenger: each is told apart, with a margin to the other.
    faces.enrol(BIDEN, [embedding["biden.jpg"]])
    who = faces.identify(embedding["obama2.jpg"])
    assert who.identity == OBAMA
    assert who.margin > 0.3
    # The index persisted: another matcher (another process) reads it and answers the same.
    again = matcher(robot, exact_below=exact_below)
    assert (len(again), again.kind) == (2, faces.kind)
    assert again.identify(embedding["obama3.jpg"]) == faces.identify(embedding["obama3.jpg"])


def test_a_corrupt_index_file_is_rebuilt_and_says_so(
    robot: tuple[Engine, Path, Path],
    embedding: dict[str, NDArray[np.float32]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    matcher(robot).enrol(OBAMA, [embedding["obama.jpg"], embedding["obama3.jpg"]])
    index_file = robot[2]
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0x40
    index_file.write_bytes(bytes(data))
    caplog.set_level(logging.INFO)
    rebuilt = matcher(robot)
    assert (
        f"face index {index_file} is corrupt or sealed with another key (it does not open): rebuilding it "
        "from the database" in caplog.text
    )
    assert f"face index {index_file} rebuilt: 2 faces (exact)" in caplog.text
    assert rebuilt.identify(embedding["obama2.jpg"]).identity == OBAMA
    caplog.clear()
    matcher(robot)  # the rebuilt file was written: it opens now
    assert "rebuild" not in caplog.text


@pytest.mark.parametrize(
    "damage",
    [b"", b"not an index at all", MAGIC + b"\x01\x05sface" + os.urandom(40), MAGIC + b"\x07"],
    ids=["empty", "foreign", "random", "truncated"],
)
def test_any_unreadable_index_file_is_rebuilt(
    robot: tuple[Engine, Path, Path], embedding: dict[str, NDArray[np.float32]], damage: bytes
) -> None:
    matcher(robot).enrol(OBAMA, [embedding["obama.jpg"]])
    robot[2].write_bytes(damage)
    assert matcher(robot).identify(embedding["obama2.jpg"]).identity == OBAMA


def test_a_missing_index_file_is_rebuilt(
    robot: tuple[Engine, Path, Path],
    embedding: dict[str, NDArray[np.float32]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    matcher(robot).enrol(OBAMA, [embedding["obama.jpg"]])
    robot[2].unlink()
    with caplog.at_level(logging.WARNING):
        assert matcher(robot).identify(embedding["obama2.jpg"]).identity == OBAMA
    assert f"face index {robot[2]} is missing: rebuilding it from the database" in caplog.text
    assert robot[2].exists()


def test_a_stale_index_file_is_brought_up_to_date(
    robot: tuple[Engine, Path, Path],
    embedding: dict[str, NDArray[np.float32]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, key_file, index_file = robot
    first = matcher(robot)
    [obama] = first.enrol(OBAMA, [embedding["obama.jpg"]])
    # Behind the index's back (down-sync, another process, a crash before the file was written): Biden is
    # added, Obama deleted.
    with store.begin() as conn:
        records.add_face(
            conn,
            load_face_key(key_file),
            BIDEN,
            "sface",
            embedding["biden.jpg"],
            source="cloud",
            at=obama.created_at,
        )
        records.delete_faces(conn, ids=[obama.id])
    caplog.set_level(logging.WARNING)
    second = matcher(robot)
    assert f"face index {index_file} is stale (1 faces added, 1 deleted since it was written)" in caplog.text
    assert second.identify(embedding["biden.jpg"]).identity == BIDEN
    assert second.identify(embedding["obama2.jpg"]).identity is None
    caplog.clear()
    assert matcher(robot).identify(embedding["biden.jpg"]).identity == BIDEN
    assert "stale" not in caplog.text  # written again when brought up to date
    # A running matcher catches up when told the database changed.
    with store.begin() as conn:
        records.add_face(
            conn,
            load_face_key(key_file),
            OBAMA,
            "sface",
            embedding["obama3.jpg"],
            source="cloud",
            at=obama.created_at,
        )
    assert second.refresh() == (1, 0)
    assert second.identify(embedding["obama2.jpg"]).identity == OBAMA


def test_another_key_cannot_open_the_faces_and_says_what_to_do(
    robot: tuple[Engine, Path, Path], embedding: dict[str, NDArray[np.float32]], tmp_path: Path
) -> None:
    [row] = matcher(robot).enrol(OBAMA, [embedding["obama.jpg"]])
    create_face_key(tmp_path / "other.key")
    with pytest.raises(FacesError) as refused:
        matcher(robot, key=load_face_key(tmp_path / "other.key"))
    assert str(refused.value) == (
        f"the face key {tmp_path / 'other.key'} does not open face {row.id} of user {OBAMA}: does not open "
        "with this key (another key, or altered data): it is not the key the faces were sealed with, or the "
        "database was altered; put the right key back, or delete the faces (`robot-agent faces delete "
        "--user-id ID`) and enrol them again"
    )
    assert matcher(robot).identify(embedding["obama2.jpg"]).identity == OBAMA  # the right key still works


def test_a_sealed_embedding_moved_to_another_passengers_row_does_not_open(
    robot: tuple[Engine, Path, Path], embedding: dict[str, NDArray[np.float32]]
) -> None:
    store, _key_file, index_file = robot
    faces = matcher(robot)
    [obama] = faces.enrol(OBAMA, [embedding["obama.jpg"]])
    [biden] = faces.enrol(BIDEN, [embedding["biden.jpg"]])
    table = records.FACES
    with store.begin() as conn:
        sealed = conn.execute(select(table.c.embedding).where(table.c.id == obama.id)).scalar_one()
        conn.execute(table.update().where(table.c.id == biden.id).values(embedding=sealed))
    index_file.unlink()
    with pytest.raises(FacesError, match=f"does not open face {biden.id} of user {BIDEN}"):
        matcher(robot)


def test_the_files_never_hold_an_embedding_in_the_clear(
    robot: tuple[Engine, Path, Path], embedding: dict[str, NDArray[np.float32]]
) -> None:
    _store, key_file, index_file = robot
    for exact_below in (EXACT_BELOW, 0):
        faces = matcher(robot, exact_below=exact_below)
        [obama] = faces.enrol(OBAMA, [embedding["obama.jpg"]])
        [biden] = faces.enrol(BIDEN, [embedding["biden.jpg"]])
        for row, name in ((obama, "obama.jpg"), (biden, "biden.jpg")):
            vectors = [embedding[name], faces._index.held(row.id)]
            everything = files_bytes(index_file.parent)
            assert not [piece for piece in pieces(*vectors) if piece in everything], name
            # The index file does hold it, sealed: what the check above looks for is there once opened.
            opened = read_index_file(index_file, load_face_key(key_file), "sface")
            assert faces._index.held(row.id).tobytes() in opened
        faces.delete_user(OBAMA)
        faces.delete_user(BIDEN)


def test_deleting_a_passenger_leaves_no_trace(
    robot: tuple[Engine, Path, Path], embedding: dict[str, NDArray[np.float32]]
) -> None:
    store, key_file, index_file = robot
    folder = index_file.parent
    faces = matcher(robot, exact_below=0)
    rows = faces.enrol(OBAMA, [embedding["obama.jpg"], embedding["obama3.jpg"]])
    faces.enrol(BIDEN, [embedding["biden.jpg"]])
    held = [faces._index.held(row.id) for row in rows]
    with store.connect() as conn:
        sealed = (
            conn.execute(select(records.FACES.c.embedding).where(records.FACES.c.user_id == OBAMA))
            .scalars()
            .all()
        )
    assert len(sealed) == 2
    # While a connection is open the write-ahead log holds the rows as written: the check below can fail.
    connection = store.connect()
    assert (folder / "robot.db-wal").exists()
    assert all(row in files_bytes(folder) for row in sealed)
    opened = read_index_file(index_file, load_face_key(key_file), "sface")
    assert all(vector.tobytes() in opened for vector in held)
    connection.close()

    deleted = faces.delete_user(OBAMA)
    assert {row.user_id for row in deleted} == {OBAMA}
    assert len(deleted) == 2
    everything = files_bytes(folder)
    assert not [row for row in sealed if row[13:29] in everything]  # not a piece of the sealed rows
    assert not [
        piece
        for piece in pieces(embedding["obama.jpg"], embedding["obama3.jpg"], *held)
        if piece in everything
    ]
    # Nor in the index file, even opened: the vectors were overwritten, not only marked deleted.
    opened = read_index_file(index_file, load_face_key(key_file), "sface")
    assert not [
        piece for piece in pieces(embedding["obama.jpg"], embedding["obama3.jpg"], *held) if piece in opened
    ]
    with store.connect() as conn:
        assert [row.user_id for row in records.list_faces(conn)] == [BIDEN]
    assert faces.identify(embedding["obama2.jpg"]).identity is None
    assert matcher(robot).identify(embedding["obama2.jpg"]).identity is None
    assert matcher(robot).identify(embedding["biden.jpg"]).identity == BIDEN


def test_nothing_biometric_is_logged(
    robot: tuple[Engine, Path, Path],
    embedding: dict[str, NDArray[np.float32]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    faces = matcher(robot)
    faces.enrol(OBAMA, [embedding["obama.jpg"]])
    faces.identify(embedding["obama2.jpg"])
    robot[2].write_bytes(b"broken")
    matcher(robot).delete_user(OBAMA)
    logged = "\n".join(f"{record.getMessage()} {record.args!r}" for record in caplog.records)
    assert "enrolled 1 faces" in logged
    assert "rebuilding" in logged
    for name in ("obama.jpg", "obama2.jpg"):
        vector = embedding[name]
        numbers = [f"{x:.4f}" for x in vector[:32] if abs(x) > 0.01] + [repr(float(x)) for x in vector[:32]]
        assert not [number for number in numbers if number in logged]
        raw = vector.tobytes()
        assert repr(raw[:8])[2:-1] not in logged
        assert raw[:8].hex() not in logged
