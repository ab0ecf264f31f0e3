"""The robot's own Ed25519 key pair: created once on the robot, the private half never leaves it."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from robot_agent.errors import KeyFileError


def create_key_file(path: Path) -> Ed25519PrivateKey:
    """Generate a key pair and write the private key to `path` (PEM, mode 0600); never overwrite one."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: a second `keys init` must not replace the identity the cloud already trusts.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise KeyFileError(
            f"{path} already exists; the robot keeps its key (delete it to start anew)"
        ) from err
    except OSError as err:
        raise KeyFileError(f"cannot create {path}: {err.strerror}") from err
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    return key


def load_key_file(path: Path) -> Ed25519PrivateKey:
    """Read the robot's private key."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise KeyFileError(f"cannot read {path}: {err.strerror}") from err
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, expected an Ed25519 key")
    return key


def public_key_pem(key: Ed25519PrivateKey) -> str:
    """The public half as PEM (SubjectPublicKeyInfo): what the cloud stores in `robots.public_key`."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
