"""The matcher's index file: the index's bytes (vectors included), sealed under the face key, written
atomically.

Layout: `RBFACEIX` | format (1 byte) | length of the embedder's name (1 byte) | the name | nonce (12) |
ciphertext | tag (16). The header is the associated data, so it cannot be changed either. A file that is
missing, unreadable, not this format, for another embedder, or that does not open is an `IndexFileProblem`
naming why: the matcher rebuilds the index from the database then.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import Final

from robot_agent.errors import FacesError
from robot_agent.faces.sealing import FaceKey, SealError

MAGIC: Final = b"RBFACEIX"
FORMAT: Final = 1


class IndexFileProblem(FacesError):
    """Why an index file cannot be used: `reason` completes "the face index FILE is ..." for the log."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"face index {path}: {reason}")


def _header(embedder: str) -> bytes:
    name = embedder.encode()
    return MAGIC + struct.pack("<BB", FORMAT, len(name)) + name


def write_index_file(path: Path, key: FaceKey, embedder: str, payload: bytes) -> None:
    """Seal `payload` and put it at `path` (mode 0600) in place of what was there, all or nothing: the
    sealed bytes go to a temporary file beside it, synced, then renamed over it."""
    header = _header(embedder)
    data = header + key.seal(payload, header)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise FacesError(f"cannot write the face index {path}: {err.strerror}") from err
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def read_index_file(path: Path, key: FaceKey, embedder: str) -> bytes:
    """The payload `write_index_file` sealed for `embedder` under `key`; IndexFileProblem otherwise."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise IndexFileProblem(path, "missing") from err
    except OSError as err:
        raise IndexFileProblem(path, f"unreadable ({err.strerror})") from err
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 2:
        raise IndexFileProblem(path, "not a face index file")
    version, length = struct.unpack_from("<BB", data, len(MAGIC))
    if version != FORMAT:
        raise IndexFileProblem(path, f"in format {version} (this version reads {FORMAT})")
    end = len(MAGIC) + 2 + length
    written_for = data[len(MAGIC) + 2 : end].decode(errors="replace")
    if written_for != embedder:
        raise IndexFileProblem(path, f"made for the embedder {written_for}, not {embedder}")
    try:
        return key.open(data[end:], data[:end])
    except SealError as err:
        raise IndexFileProblem(path, "corrupt or sealed with another key (it does not open)") from err
