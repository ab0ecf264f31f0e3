"""AES-256-GCM sealing of the robot's biometric data under the face key: each enrolled face's embedding (a
row of `faces`) and the matcher's index file.

A row is sealed with a fresh 96-bit nonce and the row's id, user and embedder as associated data, so a
ciphertext copied into another row (another passenger's, say) does not open there. The sealed form is
`version (1 byte) | nonce (12) | ciphertext | tag (16)`. Pure: no files; the key comes from `key.py`.
"""

from __future__ import annotations

import os
import uuid
from typing import Final

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from numpy.typing import NDArray

from models.faces.vectors import vector_bytes, vector_from_bytes
from robot_agent.errors import FacesError

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
ROW_VERSION: Final = b"\x01"
_ROW_CONTEXT: Final = b"railbot face row 1\x00"


class SealError(FacesError):
    """A sealed value that does not open: another key, another row's data, or altered bytes (GCM cannot
    tell these apart)."""


class FaceKey:
    """The face key: 32 random bytes, used for AES-256-GCM. `source` names where it was read (for messages);
    the secret is never shown."""

    def __init__(self, secret: bytes, source: str) -> None:
        if len(secret) != KEY_BYTES:
            raise FacesError(f"{source}: a face key is {KEY_BYTES} bytes, this one {len(secret)}")
        self._aead = AESGCM(secret)
        self.source = source

    def __repr__(self) -> str:
        return f"FaceKey(source={self.source!r})"

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """`nonce | ciphertext | tag` of `plaintext`, bound to `context` (associated data)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """The plaintext `seal` sealed with this key and `context`; SealError otherwise."""
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise SealError(f"{len(sealed)} bytes is too short to be sealed data")
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
        except InvalidTag as err:
            raise SealError("does not open with this key (another key, or altered data)") from err


def row_context(face_id: uuid.UUID, user_id: uuid.UUID, embedder: str) -> bytes:
    """A face row's associated data: what the sealed embedding belongs to."""
    return _ROW_CONTEXT + face_id.bytes + user_id.bytes + embedder.encode()


def seal_embedding(
    key: FaceKey, face_id: uuid.UUID, user_id: uuid.UUID, embedder: str, vector: NDArray[np.floating]
) -> bytes:
    """The `embedding` column of a face row: the vector as little-endian float32, sealed to its row."""
    return ROW_VERSION + key.seal(vector_bytes(vector), row_context(face_id, user_id, embedder))


def open_embedding(
    key: FaceKey, face_id: uuid.UUID, user_id: uuid.UUID, embedder: str, sealed: bytes
) -> NDArray[np.float32]:
    """The vector a face row's `embedding` column seals; SealError if it does not open as this row's."""
    if sealed[:1] != ROW_VERSION:
        raise SealError(f"unknown sealing version {sealed[:1].hex() or 'none'}")
    plaintext = key.open(sealed[1:], row_context(face_id, user_id, embedder))
    try:
        return vector_from_bytes(plaintext)
    except ValueError as err:
        raise SealError(f"opens to {err}") from err
