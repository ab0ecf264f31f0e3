"""Sealing the robot's biometric data (robot_agent/faces/sealing.py, key.py): an embedding opens only with its
key and only as its own row; the key file is made 0600, kept, and refused when others may read it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robot_agent.faces.key import FaceKeyError, create_face_key, load_face_key
from robot_agent.faces.sealing import FaceKey, SealError, open_embedding, seal_embedding

KEY = FaceKey(bytes(range(32)), "test key")
FACE, USER = uuid.uuid4(), uuid.uuid4()
VECTOR = np.linspace(-1, 1, 128, dtype=np.float32)


def test_an_embedding_opens_as_it_was_sealed_and_never_appears_in_the_clear() -> None:
    sealed = seal_embedding(KEY, FACE, USER, "sface", VECTOR)
    assert np.array_equal(open_embedding(KEY, FACE, USER, "sface", sealed), VECTOR)
    assert len(sealed) == 1 + 12 + VECTOR.nbytes + 16
    assert VECTOR.tobytes()[:16] not in sealed
    # A fresh nonce every time: the same face sealed twice gives unrelated bytes.
    again = seal_embedding(KEY, FACE, USER, "sface", VECTOR)
    assert again[1:13] != sealed[1:13]
    assert again[13:] != sealed[13:]


@pytest.mark.parametrize(
    ("face", "user", "embedder"),
    [(uuid.uuid4(), USER, "sface"), (FACE, uuid.uuid4(), "sface"), (FACE, USER, "dlib_resnet_v1")],
    ids=["another face", "another user", "another embedder"],
)
def test_a_sealed_embedding_does_not_open_in_another_row(
    face: uuid.UUID, user: uuid.UUID, embedder: str
) -> None:
    sealed = seal_embedding(KEY, FACE, USER, "sface", VECTOR)
    with pytest.raises(SealError, match="does not open with this key"):
        open_embedding(KEY, face, user, embedder, sealed)


def test_another_key_does_not_open_it() -> None:
    sealed = seal_embedding(KEY, FACE, USER, "sface", VECTOR)
    with pytest.raises(SealError):
        open_embedding(FaceKey(os.urandom(32), "other"), FACE, USER, "sface", sealed)


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_altered_byte_is_refused(where: int, flip: int) -> None:
    sealed = bytearray(seal_embedding(KEY, FACE, USER, "sface", VECTOR))
    sealed[where % len(sealed)] ^= flip
    with pytest.raises(SealError):
        open_embedding(KEY, FACE, USER, "sface", bytes(sealed))


def test_truncated_data_is_refused() -> None:
    with pytest.raises(SealError, match="too short"):
        KEY.open(b"\x00" * 27, b"context")


def test_the_key_never_shows_its_secret() -> None:
    assert repr(KEY) == "FaceKey(source='test key')"
    assert "\\x00\\x01" not in repr(KEY)
    assert "000102" not in repr(KEY)


def test_the_key_file_is_made_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "var" / "faces.key"
    assert create_face_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    secret = path.read_bytes()
    assert len(secret) == 32
    assert not create_face_key(path)  # a second `keys init` keeps it: the sealed faces need it
    assert path.read_bytes() == secret
    sealed = seal_embedding(load_face_key(path), FACE, USER, "sface", VECTOR)
    assert np.array_equal(open_embedding(load_face_key(path), FACE, USER, "sface", sealed), VECTOR)


def test_a_missing_key_file_is_refused_naming_the_command(tmp_path: Path) -> None:
    path = tmp_path / "faces.key"
    with pytest.raises(FaceKeyError) as refused:
        load_face_key(path)
    assert str(refused.value) == f"face key file not found: {path} (create it with `robot-agent keys init`)"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "faces.key"
    create_face_key(path)
    path.chmod(mode)
    with pytest.raises(FaceKeyError) as refused:
        load_face_key(path)
    assert str(refused.value) == f"{path} is readable by others (mode {mode:04o}); run `chmod 600` on it"
    with pytest.raises(FaceKeyError):
        create_face_key(path)  # keys init says so too, rather than keep quiet


def test_a_file_that_is_not_a_face_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "faces.key"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    path.chmod(0o600)
    with pytest.raises(FaceKeyError) as refused:
        load_face_key(path)
    assert str(refused.value) == (
        f"{path} holds 28 bytes, not a face key (32 random bytes; create it with `robot-agent keys init`)"
    )
