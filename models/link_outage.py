"""What an MQTT client says about its broker connection, pure (no I/O, no paho): the robot's link and the
cloud's ingest and down-sync services all say it this way.

An outage is said once: the first failed attempt is a WARNING naming the reason, later attempts that fail the
same way are not news (again only if the reason changes), and the connection that ends the outage says how
long it lasted. A connection that was up and drops says so once; the attempts after it are the outage.

`LinkOutage` only keeps the state and answers "is this news"; the caller logs, with its own identifiers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Protocol


class ReasonCodeLike(Protocol):
    """An MQTT v5 reason code as paho gives it (`paho.mqtt.reasoncodes.ReasonCode`)."""

    value: int

    def getName(self) -> str: ...  # paho's name


def describe(reason: ReasonCodeLike) -> str:
    """A reason code as a person reads it: "not authorized (0x87)"."""
    return f"{reason.getName().lower()} (0x{reason.value:02x})"


def unreachable(err: OSError) -> str:
    """Why a TCP connection to the broker failed, as a person reads it."""
    if isinstance(err, ConnectionRefusedError):
        return "connection refused (no broker listening)"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve the host name: {err.strerror or err}"
    if isinstance(err, TimeoutError):
        return "timed out connecting"
    return f"unreachable: {err.strerror or err}"


def refused(reason: ReasonCodeLike) -> str:
    """The reason for an outage when the broker answers CONNECT with a failure (bad credentials: 0x87)."""
    return f"refused the connection: {describe(reason)}"


def disconnected(reason: ReasonCodeLike, *, from_server: bool) -> str:
    """Why a connection ended. paho reports a connection that just ended as 0x80 "unspecified error"; only a
    DISCONNECT packet from the broker carries a reason of its own."""
    if from_server:
        return f"broker disconnected: {describe(reason)}"
    return "connection lost" if reason.value >= 0x80 else "disconnected"


class LinkOutage:
    """The once-per-outage state of one broker connection. Not thread-safe: feed it from one thread (paho's).

    A new one counts as an outage that began at its creation (nothing is connected yet), with nothing said.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._down_since: float | None = clock()
        self._reason: str | None = None  # the reason last said (a WARNING), None until one is
        self._ever_connected = False

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, reason: str) -> bool:
        """An attempt to connect failed for `reason`: True if that is news (the first failure of this outage,
        or a different reason than the one last said), to say as a WARNING; False for a repeat."""
        if self._down_since is None:
            self._down_since = self._clock()
        if reason == self._reason:
            return False
        self._reason = reason
        return True

    def connected(self) -> float | None:
        """The broker accepted the connection: the seconds it was down, to say "back after ...", or None for
        a first connection that no failure came before (just "connected")."""
        down_s = self._clock() - self._down_since if self._down_since is not None else 0.0
        news = self._ever_connected or self._reason is not None
        self._down_since, self._reason, self._ever_connected = None, None, True
        return down_s if news else None

    def dropped(self) -> bool:
        """The connection ended: True if it was up (its loss is news, and the outage starts now); False when
        an attempt that never connected ends this way (a refused CONNECT does, every time)."""
        if self._down_since is not None:
            return False
        self._down_since = self._clock()
        return True
