"""Engineers' passwords: bcrypt over a SHA-256 pre-hash, shared by the cloud (which sets them) and the robot
(which checks them offline at the terminal UI).

bcrypt reads only the first 72 bytes of its input; pre-hashing (base64 of SHA-256, 44 bytes) lets a
password of any length count in full. The result is bcrypt's 60-character string, which is exactly the
seed's `engineers.password varchar(60)`.
"""

from __future__ import annotations

import base64
import hashlib

import bcrypt

ROUNDS = 12


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int = ROUNDS) -> str:
    """The stored form of a password (slow on purpose: ~0.2 s at 12 rounds)."""
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def check_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from; a malformed `stored` never matches."""
    try:
        return bcrypt.checkpw(_prehash(password), stored.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False
