"""Mosquitto's files, generated from the database: `mosquitto.conf` with the limits the sync contract
depends on, and the dynamic-security plugin's users and ACLs (`dynamic-security.json`) for the robots and the
cloud's ingest user (decision 26)."""

from __future__ import annotations

import base64
import binascii
import glob
import grp
import hashlib
import json
import logging
import os
import pwd
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cloud_sync.db.tables import RobotCredential
from cloud_sync.errors import CloudSyncError
from cloud_sync.sync.broker_login import read_credentials
from cloud_sync.sync.provisioning import (
    HASH_ID,
    ROBOT_USER_PREFIX,
    SALT_BYTES,
    mosquitto_hash,
    write_file,
)
from models.sync_batch import TOPIC_ROOT

log = logging.getLogger(__name__)

DEFAULT_INGEST_USER = "cloud-ingest"
DEFAULT_LISTEN = ("127.0.0.1", 1883)

# The generated config's max_inflight_messages (below): paho ignores the Receive Maximum the broker
# advertises, so the cloud's clients keep their in-flight window within it themselves.
BROKER_MAX_INFLIGHT: Final = 20


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` for the broker's listener."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CloudSyncError(f"not HOST:PORT: {value!r}")
    return host, int(port)


def _check_username(name: str) -> str:
    # ':' ends the name in a password file, whitespace ends it in an ACL line.
    if not name or len(name) > 64 or any(c == ":" or c.isspace() for c in name):
        raise CloudSyncError(f"not a broker user name: {name!r} (1 to 64 characters, no ':' or spaces)")
    if name.startswith(ROBOT_USER_PREFIX):
        raise CloudSyncError(f"{name!r}: names starting with {ROBOT_USER_PREFIX!r} are robots'")
    return name


# The cloud's ingest workers share the robots' batches through this MQTT v5 shared subscription.
INGEST_SUBSCRIPTION: Final = f"$share/ingest/{TOPIC_ROOT}/+/up/batch"
# Where Debian, Ubuntu and Mosquitto's own builds put the dynamic-security plugin.
DYNSEC_PLUGIN_PATHS: Final = (
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/*/mosquitto_dynamic_security.so",
)
# The user Mosquitto switches to when started as root (its `user` option's default).
BROKER_ACCOUNT: Final = "mosquitto"


def find_dynsec_plugin() -> Path | None:
    """The dynamic-security plugin installed on this machine, if any."""
    for pattern in DYNSEC_PLUGIN_PATHS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    return None


@dataclass(frozen=True)
class BrokerFiles:
    """What `broker-config` wrote; `unreachable` is a folder user `mosquitto` cannot enter on the way to them
    (a broker started as root switches to that user and would not open its files), if any."""

    config: Path
    security: Path
    ingest_credentials: Path
    ingest_user: str
    robots: int
    unreachable: Path | None = None


def dynsec_password(password_hash: str) -> dict[str, str | int]:
    """The dynamic-security plugin's fields for a stored `$7$ITERATIONS$SALT$HASH` line: the PBKDF2-SHA512
    that `mosquitto_passwd` writes, with the same 12-byte salt and 64-byte hash, in other fields.
    ValueError if it is not one."""
    parts = password_hash.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != str(HASH_ID) or not parts[2].isdigit():
        raise ValueError("not a $7$ hash")
    _, _, iterations, salt, digest = parts
    try:
        sizes = len(base64.b64decode(salt, validate=True)), len(base64.b64decode(digest, validate=True))
    except binascii.Error as err:
        raise ValueError("not base64") from err
    if sizes != (SALT_BYTES, hashlib.sha512().digest_size):
        raise ValueError(f"a {sizes[0]}-byte salt and a {sizes[1]}-byte hash, not {SALT_BYTES} and 64")
    return {"password": digest, "salt": salt, "iterations": int(iterations)}


def _acl(acltype: str, topic: str) -> dict[str, str | bool]:
    return {"acltype": acltype, "topic": topic, "allow": True}


def dynsec_config(credentials: list[RobotCredential], ingest_user: str, ingest_hash: str) -> dict[str, Any]:
    """The dynamic-security plugin's JSON: each robot publishes only under its own up/ and subscribes to and
    receives only its own down/; the ingest user subscribes to and receives every robot's up/ (the shared
    ingest group included: the plugin checks the `$share/GROUP/...` form) and publishes every down/.
    Whatever no role allows is refused, SUBSCRIBE included."""
    clients: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    for row in credentials:
        try:
            password = dynsec_password(row.password_hash)
        except ValueError as err:
            raise CloudSyncError(
                f"robot {row.robot_id}: its stored broker password hash is unusable ({err}); "
                "run `cloud-sync robot provision` for it again"
            ) from err
        clients.append({"username": row.username, **password, "roles": [{"rolename": row.username}]})
        own = f"{TOPIC_ROOT}/{row.robot_id}"
        roles.append(
            {
                "rolename": row.username,
                "acls": [
                    _acl("publishClientSend", f"{own}/up/#"),
                    _acl("subscribePattern", f"{own}/down/#"),
                    _acl("publishClientReceive", f"{own}/down/#"),
                ],
            }
        )
    clients.append(
        {"username": ingest_user, **dynsec_password(ingest_hash), "roles": [{"rolename": ingest_user}]}
    )
    roles.append(
        {
            "rolename": ingest_user,
            "acls": [
                _acl("subscribePattern", INGEST_SUBSCRIPTION),
                _acl("subscribePattern", f"{TOPIC_ROOT}/+/up/#"),
                _acl("publishClientReceive", f"{TOPIC_ROOT}/+/up/#"),
                _acl("publishClientSend", f"{TOPIC_ROOT}/+/down/#"),
            ],
        }
    )
    return {
        "clients": clients,
        "roles": roles,
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def mosquitto_conf(out: Path, listen: tuple[str, int], plugin: Path) -> str:
    """mosquitto.conf with the limits the sync contract (docs/sync.md) depends on, each saying why."""
    host, port = listen
    return f"""\
# Generated by `cloud-sync broker-config`; edits are overwritten. See docs/sync.md.
per_listener_settings false
listener {port} {host}

# No anonymous clients: every robot has its own user, and the dynamic-security plugin confines it to its own
# topics. Not password_file + acl_file: an acl_file refuses no SUBSCRIBE (it only filters delivery), so a
# robot could join the ingest group's shared subscription and take a share of every robot's batches.
# The plugin reads its file at start only: restart the broker (not SIGHUP) after regenerating it.
allow_anonymous false
plugin {plugin}
plugin_opt_config_file {out / DYNSEC_FILE}

# Mosquitto's default of 1000 silently dropped messages the broker had already acked when a subscriber
# (ingest) was offline for a while: the queue for an offline persistent session must hold a fleet's backlog.
max_queued_messages 100000

# Messages in flight per client. Beyond the Receive Maximum, QoS 2 lost 40-49% while paho reported success;
# robots keep at most 8 batches unacknowledged, within this.
max_inflight_messages {BROKER_MAX_INFLIGHT}

# Queued messages and sessions survive a broker restart. This is not durability: a `kill -9` lost acked
# messages, which is why robots delete outbox rows only on the cloud's application ack.
persistence true
persistence_location {out / "data"}/
"""


DYNSEC_FILE: Final = "dynamic-security.json"
# Files of the plain password_file + acl_file setup this command wrote before; removed, as they hold hashes.
_OLD_FILES: Final = ("passwd", "acl")


def _broker_account() -> tuple[int, int] | None:
    """(uid, gid) of user `mosquitto` when we run as root and it exists: the user a broker started as root
    switches to before it opens the files."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(BROKER_ACCOUNT)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _unreachable(folder: Path, uid: int, gid: int) -> Path | None:
    """The first folder on the way to `folder` (itself included) that user `uid` may not enter, if any."""
    groups = {gid} | {group.gr_gid for group in grp.getgrall() if BROKER_ACCOUNT in group.gr_mem}
    for directory in [*reversed(folder.parents), folder]:
        status = directory.stat()
        if status.st_uid == uid:
            bit = stat.S_IXUSR
        elif status.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not status.st_mode & bit:
            return directory
    return None


def write_broker_config(
    credentials: list[RobotCredential],
    out: Path,
    *,
    ingest_user: str,
    listen: tuple[str, int],
    plugin: Path | None = None,
) -> BrokerFiles:
    """Write `mosquitto.conf` and the dynamic-security plugin's `dynamic-security.json` into `out` from the
    robots' credentials, with an ingest user whose password is made once (`ingest-credentials`, 0600) and
    reused on later runs, so that regenerating the configuration never locks out a running ingest.

    Run as root where user `mosquitto` exists (a broker started as root switches to it), the broker's files
    are root:mosquitto 0640, `out` root:mosquitto 0750 when made here, and `data` mosquitto's own; otherwise
    they are 0600 and the broker runs as their owner. `ingest-credentials` is always 0600, the caller's."""
    _check_username(ingest_user)
    plugin = plugin or find_dynsec_plugin()
    if plugin is None:
        raise CloudSyncError(
            "Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so, Mosquitto 2.0 or later) is "
            "not installed here: install mosquitto or pass --dynsec-plugin PATH (its path on the broker)"
        )
    out = out.resolve()  # the broker may run from another folder
    account = _broker_account()
    ingest_file = out / "ingest-credentials"
    new_ingest = not ingest_file.exists()
    if new_ingest:
        ingest_password = secrets.token_urlsafe(24)
    else:
        stored_user, ingest_password = read_credentials(ingest_file)
        if stored_user != ingest_user:
            raise CloudSyncError(
                f"{ingest_file} is for user {stored_user!r}, not {ingest_user!r}: "
                f"pass --ingest-user {stored_user} or remove the file to make a new user"
            )
    security = dynsec_config(credentials, ingest_user, mosquitto_hash(ingest_password))
    if not out.exists():
        try:
            out.mkdir(parents=True, mode=0o750 if account else 0o700)
            if account:
                os.chown(out, -1, account[1])
        except OSError as err:
            raise CloudSyncError(f"cannot create {out}: {err.strerror}") from err
    if new_ingest:
        write_file(ingest_file, f"{ingest_user}:{ingest_password}\n", 0o600)
    files = BrokerFiles(
        config=out / "mosquitto.conf",
        security=out / DYNSEC_FILE,
        ingest_credentials=ingest_file,
        ingest_user=ingest_user,
        robots=len(credentials),
        unreachable=_unreachable(out, *account) if account else None,
    )
    data = out / "data"
    try:
        data.mkdir(mode=0o700, exist_ok=True)
        if account:  # the broker writes its persistence file there
            for path in (data, *data.iterdir()):
                os.chown(path, *account)
    except OSError as err:
        raise CloudSyncError(f"cannot create {data}: {err.strerror}") from err
    group = account[1] if account else None
    mode = 0o640 if account else 0o600
    write_file(files.security, json.dumps(security, indent=2) + "\n", mode, group=group)
    write_file(files.config, mosquitto_conf(out, listen, plugin), mode, group=group)
    for name in _OLD_FILES:
        (out / name).unlink(missing_ok=True)
    log.info("broker configuration written dir=%s robots=%d", out, len(credentials))
    return files
