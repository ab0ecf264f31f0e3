"""Private key files: written once (mode 0600, never over another), read back as Ed25519 keys.

Shared by the robot's identity, the cloud's ticket-signing keys and the demo wallet. Problems are
`KeyFileProblem` (a `ValueError`) with a message naming the file; each caller wraps it in its own error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.errors import ModelsError


class KeyFileProblem(ModelsError, ValueError):
    """A key file that cannot be written or read, or holds no usable key."""


def write_private_file(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 (its folder 0700 if new) holding `data`, synced to disk. Raises
    `FileExistsError` if it exists (a key is never replaced by accident), `KeyFileProblem` otherwise."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise
    except OSError as err:
        raise KeyFileProblem(f"cannot create {path}: {err.strerror}") from err
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def check_private(path: Path) -> None:
    """Refuse a key file that others may read: `KeyFileProblem` naming its mode and the fix."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as err:
        raise KeyFileProblem(f"cannot read {path}: {err.strerror}") from err
    if mode & 0o077:
        raise KeyFileProblem(f"{path} is readable by others (mode {mode:04o}); run `chmod 600` on it")


def ed25519_pem(key: Ed25519PrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_ed25519_pem(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file at `path`."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise KeyFileProblem(f"cannot read {path}: {err.strerror}") from err
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise KeyFileProblem(f"{path} is not an unencrypted PEM private key") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileProblem(f"{path} holds a {type(key).__name__}, expected an Ed25519 key")
    return key
