"""How the cloud's own MQTT clients (ingest, down-sync) reach the broker: the URL, the user and password from
a credentials file, the client id. The password is never printed or logged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cloud_sync.errors import CloudSyncError
from models.credentials import parse_credentials


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


def mqtt_address(url: str) -> tuple[str, int]:
    """(host, port) of a plain `mqtt://HOST[:PORT]` URL, for the cloud's own clients (ingest, down-sync)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise CloudSyncError(f"not an MQTT URL: {url!r} (mqtt://HOST[:PORT])")
    return parts.hostname, parts.port or 1883


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
