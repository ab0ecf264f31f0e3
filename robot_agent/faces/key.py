"""The face key file: 32 random bytes, mode 0600, made by `robot-agent keys init` and never in robot.toml.

It seals every enrolled face and the matcher's index file (`sealing.py`). Lost, it makes the sealed faces
unreadable (delete them and enrol again, or let down-sync bring them again); so it is never made over one
that exists, and face features refuse to start without it rather than make a new one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from models.keyfiles import KeyFileProblem, check_private, write_private_file
from robot_agent.errors import FacesError
from robot_agent.faces.sealing import KEY_BYTES, FaceKey

CREATE_HINT: Final = "create it with `robot-agent keys init`"


class FaceKeyError(FacesError):
    """The face key file is missing, readable by others, or not a face key."""


def create_face_key(path: Path) -> bool:
    """Make a face key at `path` (mode 0600) unless one is there; whether it was made."""
    try:
        write_private_file(path, os.urandom(KEY_BYTES))
    except FileExistsError:
        load_face_key(path)  # one that is there must be a face key, and private
        return False
    except KeyFileProblem as err:
        raise FaceKeyError(str(err)) from err
    return True


def load_face_key(path: Path) -> FaceKey:
    """The face key in `path`; FaceKeyError naming the file and the fix otherwise."""
    if not path.exists():
        raise FaceKeyError(f"face key file not found: {path} ({CREATE_HINT})")
    try:
        check_private(path)
        secret = path.read_bytes()
    except KeyFileProblem as err:
        raise FaceKeyError(str(err)) from err
    except OSError as err:
        raise FaceKeyError(f"cannot read {path}: {err.strerror}") from err
    if len(secret) != KEY_BYTES:
        raise FaceKeyError(
            f"{path} holds {len(secret)} bytes, not a face key ({KEY_BYTES} random bytes; {CREATE_HINT})"
        )
    return FaceKey(secret, str(path))
