"""The MQTT broker's side of the fleet: robots' broker users (provisioning) and the Mosquitto configuration
generated from the database (users and ACLs for the dynamic-security plugin, limits).

Only the PBKDF2 hash of a password is stored; the password itself exists in the file handed to the robot
(or to ingest) and nowhere else, and is never printed or logged.
"""

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
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.errors import CloudSyncError
from cloud_sync.signing import trust_document, trusted_keys
from cloud_sync.tables import RobotCredential
from models.base_api import TrustList
from models.base_server import Robot
from models.credentials import parse_credentials
from models.link_outage import LinkOutage, disconnected, refused, unreachable
from models.sync_batch import TOPIC_ROOT

log = logging.getLogger(__name__)

ROBOT_USER_PREFIX = "robot-"
DEFAULT_INGEST_USER = "cloud-ingest"
DEFAULT_LISTEN = ("127.0.0.1", 1883)

# Mosquitto 2.0's `mosquitto_passwd` format: "$7$" is PBKDF2-SHA512, then iterations, salt and hash in base64.
_HASH_ID = 7
_ITERATIONS = 101
_SALT_BYTES = 12


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """The hash `mosquitto_passwd` writes for `password`: `$7$101$<salt b64>$<hash b64>`."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    return f"${_HASH_ID}${_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def robot_username(robot_id: uuid.UUID) -> str:
    return f"{ROBOT_USER_PREFIX}{robot_id}"


def parse_mqtt_url(url: str) -> str:
    """`mqtt://HOST:PORT` (or `mqtts://`), checked, so that a typo fails here and not on the train."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as err:
        raise CloudSyncError(f"not a broker URL: {url!r} (bad port)") from err
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port is None:
        raise CloudSyncError(f"not a broker URL: {url!r}: use mqtt://HOST:PORT")
    if parts.path not in ("", "/") or parts.username or parts.password:
        raise CloudSyncError(f"a broker URL is mqtt://HOST:PORT only, without a path or credentials: {url!r}")
    return url


# The generated config's max_inflight_messages (below): paho ignores the Receive Maximum the broker
# advertises, so the cloud's clients keep their in-flight window within it themselves.
BROKER_MAX_INFLIGHT: Final = 20
# How long the broker keeps a cloud client's session (its subscriptions, messages handed to it) after it goes.
CLOUD_SESSION_EXPIRY_S: Final = 24 * 3600
# The cloud's clients' reconnect backoff, in seconds (paho doubles the wait from the first to the second).
RECONNECT_MIN_S: Final = 1
RECONNECT_MAX_S: Final = 5


class BrokerClient(mqtt.Client):
    """paho's client, remembering why its last connection attempt failed: paho's `on_connect_fail` is told
    nothing, and the reason (refused, unresolvable, unreachable, timed out) is what an engineer needs."""

    connect_error: OSError | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as err:
            self.connect_error = err
            raise


@dataclass(frozen=True)
class BrokerLogin:
    """How the cloud's own clients (ingest, down-sync) reach the broker. Each client adds its role to
    `client_id`, which must stay the same across restarts (the broker keeps its session by it)."""

    url: str
    username: str | None
    password: str | None
    client_id: str

    def __repr__(self) -> str:  # never the password
        return f"BrokerLogin(url={self.url!r}, username={self.username!r}, client_id={self.client_id!r})"

    @property
    def address(self) -> tuple[str, int]:
        return mqtt_address(self.url)

    def client(self, *, manual_ack: bool = False) -> BrokerClient:
        """A paho MQTT v5 client for this login: its credentials, the broker's in-flight window, a 1-5 s
        reconnect backoff. Not connected yet (`connect_properties` gives the session's CONNECT properties;
        `ConnectionLog` logs its outages)."""
        client = BrokerClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=manual_ack,
        )
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        client.max_inflight_messages_set(BROKER_MAX_INFLIGHT)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        return client


def connect_properties(session_expiry_s: int) -> Properties:
    """CONNECT properties asking the broker to keep the session `session_expiry_s` after a disconnect."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
    properties.SessionExpiryInterval = session_expiry_s
    return properties


class ConnectionLog:
    """Logs one cloud client's broker connection as the robot's link does (models.link_outage): a WARNING with
    the reason when the broker cannot be reached or refuses the client, once per outage (again only if the
    reason changes), not once per reconnect attempt; an INFO when it is back, saying how long it was down;
    an INFO when a connection that was up drops. State on paho's thread only.

    `attach` takes paho's connect-failure and disconnect callbacks; the client's own `on_connect` calls
    `accepted` first and goes on only if it is True."""

    def __init__(self, logger: logging.Logger, role: str, login: BrokerLogin) -> None:
        self._log = logger
        self._role = role
        self._client_id = login.client_id
        self._host, self._port = login.address
        self._outage = LinkOutage()

    def attach(self, client: mqtt.Client) -> None:
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect

    def accepted(self, reason: ReasonCode) -> bool:
        """The broker's CONNACK: False (and a WARNING once) if it refused; True if connected, saying how long
        the connection was down if it was."""
        if reason.is_failure:
            self._failed(refused(reason))
            return False
        down_s = self._outage.connected()
        if down_s is not None:
            self._log.info(
                "%s client=%s back on the broker at %s:%d after %.1f s down",
                self._role,
                self._client_id,
                self._host,
                self._port,
                down_s,
            )
        return True

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        err = client.connect_error if isinstance(client, BrokerClient) else None
        self._failed(unreachable(err) if err is not None else "cannot connect")

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Any,
    ) -> None:
        why = disconnected(reason, from_server=flags.is_disconnect_packet_from_server)
        if self._outage.dropped():
            self._log.info("%s client=%s %s", self._role, self._client_id, why)
        else:  # a refused CONNECT ends this way too, on every attempt; already said once
            self._log.debug("%s client=%s %s", self._role, self._client_id, why)

    def _failed(self, reason: str) -> None:
        if not self._outage.failed(reason):
            self._log.debug("%s client=%s still not connected: %s", self._role, self._client_id, reason)
            return
        self._log.warning(
            "%s client=%s cannot connect to the broker at %s:%d: %s (retrying every %d-%d s)",
            self._role,
            self._client_id,
            self._host,
            self._port,
            reason,
            RECONNECT_MIN_S,
            RECONNECT_MAX_S,
        )


def mqtt_address(url: str) -> tuple[str, int]:
    """(host, port) of a plain `mqtt://HOST[:PORT]` URL, for the cloud's own clients (ingest, down-sync)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise CloudSyncError(f"not an MQTT URL: {url!r} (mqtt://HOST[:PORT])")
    return parts.hostname, parts.port or 1883


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


def _write_file(path: Path, text: str, mode: int, *, group: int | None = None) -> None:
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
            with os.fdopen(fd, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise CloudSyncError(f"cannot write {path}: {err.strerror}") from err


def read_credentials(path: Path) -> tuple[str, str]:
    """`username:password` from a file only its owner can read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as err:
        raise CloudSyncError(f"cannot read {path}: {err.strerror}") from err
    try:
        return parse_credentials(text, mode, str(path))
    except ValueError as err:
        raise CloudSyncError(str(err)) from err


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


def write_robot_files(credential: NewCredential, out: Path) -> ProvisionedRobot:
    """Write what the robot needs into `out`: `mqtt-credentials` (0600) and `trust.json` (the ticket trust
    list). Called after the commit: a file with a password the database does not know would lock it out."""
    credentials_file, trust_file = out / "mqtt-credentials", out / "trust.json"
    _write_file(credentials_file, f"{credential.username}:{credential.password}\n", 0o600)
    _write_file(trust_file, credential.trust.model_dump_json(indent=2) + "\n", 0o644)
    return ProvisionedRobot(
        credential.robot_id, credential.username, credentials_file, trust_file, len(credential.trust.keys)
    )


async def robot_credentials(session: AsyncSession) -> list[RobotCredential]:
    """Every robot's broker user, by name."""
    return list((await session.exec(select(RobotCredential).order_by(col(RobotCredential.username)))).all())


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
    if len(parts) != 5 or parts[0] or parts[1] != str(_HASH_ID) or not parts[2].isdigit():
        raise ValueError("not a $7$ hash")
    _, _, iterations, salt, digest = parts
    try:
        sizes = len(base64.b64decode(salt, validate=True)), len(base64.b64decode(digest, validate=True))
    except binascii.Error as err:
        raise ValueError("not base64") from err
    if sizes != (_SALT_BYTES, hashlib.sha512().digest_size):
        raise ValueError(f"a {sizes[0]}-byte salt and a {sizes[1]}-byte hash, not {_SALT_BYTES} and 64")
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
        _write_file(ingest_file, f"{ingest_user}:{ingest_password}\n", 0o600)
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
    _write_file(files.security, json.dumps(security, indent=2) + "\n", mode, group=group)
    _write_file(files.config, mosquitto_conf(out, listen, plugin), mode, group=group)
    for name in _OLD_FILES:
        (out / name).unlink(missing_ok=True)
    log.info("broker configuration written dir=%s robots=%d", out, len(credentials))
    return files
