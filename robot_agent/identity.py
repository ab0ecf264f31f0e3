"""The robot's own Ed25519 key pair: created once on the robot, the private half never leaves it."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.keyfiles import KeyFileProblem, ed25519_pem, load_ed25519_pem, write_private_file
from robot_agent.errors import KeyFileError


def create_key_file(path: Path) -> Ed25519PrivateKey:
    """Generate a key pair and write the private key to `path` (PEM, mode 0600); never overwrite one."""
    key = Ed25519PrivateKey.generate()
    try:
        # O_EXCL: a second `keys init` must not replace the identity the cloud already trusts.
        write_private_file(path, ed25519_pem(key))
    except FileExistsError as err:
        raise KeyFileError(
            f"{path} already exists; the robot keeps its key (delete it to start anew)"
        ) from err
    except KeyFileProblem as err:
        raise KeyFileError(str(err)) from err
    return key


def load_key_file(path: Path) -> Ed25519PrivateKey:
    """Read the robot's private key."""
    try:
        return load_ed25519_pem(path)
    except KeyFileProblem as err:
        raise KeyFileError(str(err)) from err


def public_key_pem(key: Ed25519PrivateKey) -> str:
    """The public half as PEM (SubjectPublicKeyInfo): what the cloud stores in `robots.public_key`."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
