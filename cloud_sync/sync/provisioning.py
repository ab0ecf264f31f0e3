"""Robots' broker users: a robot of the `robots` table gets a new broker password, whose PBKDF2 hash (the
line `mosquitto_passwd` writes) is stored and whose clear text exists only in the file handed to the robot,
never printed or logged. `broker_files` turns the stored hashes into the broker's configuration."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.tables import RobotCredential
from cloud_sync.desks.signing import trust_document, trusted_keys
from cloud_sync.errors import CloudSyncError
from models.base_api import TrustList
from models.base_server import Robot

log = logging.getLogger(__name__)

ROBOT_USER_PREFIX = "robot-"

# Mosquitto 2.0's `mosquitto_passwd` format: "$7$" is PBKDF2-SHA512, then iterations, salt and hash in base64.
HASH_ID = 7
ITERATIONS = 101
SALT_BYTES = 12


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """The hash `mosquitto_passwd` writes for `password`: `$7$101$<salt b64>$<hash b64>`."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return f"${HASH_ID}${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def robot_username(robot_id: uuid.UUID) -> str:
    return f"{ROBOT_USER_PREFIX}{robot_id}"


def write_file(path: Path, text: str | bytes, mode: int, *, group: int | None = None) -> None:
    """Write `path` whole or not at all (a temporary file renamed over it), created with `mode` (and
    `group`, if given).

    A broker starting must never read a half-written password file, and a secret must never exist, even for
    a moment, readable by more than its owner and `group`.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            if group is not None:
                os.fchown(fd, -1, group)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as out:
                out.write(text.encode() if isinstance(text, str) else text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise CloudSyncError(f"cannot write {path}: {err.strerror}") from err


@dataclass(frozen=True)
class NewCredential:
    """A robot's new broker password, in memory until it is written to the robot's file."""

    robot_id: uuid.UUID
    username: str
    password: str = field(repr=False)
    trust: TrustList


@dataclass(frozen=True)
class ProvisionedRobot:
    """What `robot provision` wrote: where the robot's files are, never the password."""

    robot_id: uuid.UUID
    username: str
    credentials_file: Path
    trust_file: Path
    trusted_keys: int
    card_key_file: Path


async def provision_robot(session: AsyncSession, robot_id: uuid.UUID) -> NewCredential:
    """Give a robot of the `robots` table a new broker password, replacing any old one; only its hash is
    stored."""
    if await session.get(Robot, robot_id) is None:
        raise CloudSyncError(
            f"no robot with id {robot_id} in the robots table: create it first (POST /base_api/admin/robot)"
        )
    username = robot_username(robot_id)
    password = secrets.token_urlsafe(24)
    keys = await trusted_keys(session)
    if not keys:
        log.warning("no ticket-signing key yet robot=%s: its trust list is empty until it syncs", robot_id)
    credential = await session.get(RobotCredential, robot_id)
    if credential is None:
        credential = RobotCredential(robot_id=robot_id, username=username, password_hash="")
    credential.username = username
    credential.password_hash = mosquitto_hash(password)
    session.add(credential)
    await session.commit()
    log.info("provisioned robot=%s user=%s", robot_id, username)
    return NewCredential(robot_id, username, password, trust_document(keys))


def write_robot_files(credential: NewCredential, out: Path, card_pepper: bytes) -> ProvisionedRobot:
    """Write what the robot needs into `out`: `mqtt-credentials` (0600), `trust.json` (the ticket trust
    list) and `card-pepper` (0600: the fleet's card pepper, so that the robot matches engineers' auth cards
    offline against the synced keyed hashes). Called after the commit: a file with a password the database
    does not know would lock it out."""
    credentials_file, trust_file = out / "mqtt-credentials", out / "trust.json"
    card_key_file = out / "card-pepper"
    write_file(credentials_file, f"{credential.username}:{credential.password}\n", 0o600)
    write_file(trust_file, credential.trust.model_dump_json(indent=2) + "\n", 0o644)
    write_file(card_key_file, card_pepper, 0o600)
    return ProvisionedRobot(
        credential.robot_id,
        credential.username,
        credentials_file,
        trust_file,
        len(credential.trust.keys),
        card_key_file,
    )


async def robot_credentials(session: AsyncSession) -> list[RobotCredential]:
    """Every robot's broker user, by name."""
    return list((await session.exec(select(RobotCredential).order_by(col(RobotCredential.username)))).all())
