"""Engineers' sessions on the local API, and the lock that five failed logins put on logging in.

A session is opened by a login and password or by an auth card, and named by a random token (`secrets`,
256 bits) that the client sends as `Authorization: Bearer ...`. Only the token's SHA-256 is kept, so not even
this process's memory holds a usable token once it is handed out; tokens are never logged. A session ends
after `idle_s` without use, at logout, or when the agent stops (sessions are not persisted: an engineer logs
in again after a restart).

Failed logins are counted robot-wide, not per login or per card: the socket does not tell engineers apart,
and a per-login count would let someone with a stack of cloned cards, or a list of logins, try forever.
`limit` failures in a row lock every login for `lock_s`; a success resets the count. While locked, attempts
are refused without being checked or counted (the lock does not grow), so at most `limit` guesses fit in
each `lock_s`. Times come from an injectable monotonic clock.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from models.privileges import Privilege

LIMIT: Final = 5
LOCK_S: Final = 300.0
IDLE_S: Final = 900.0

Via = Literal["password", "card"]


@dataclass
class Session:
    engineer_id: uuid.UUID
    login: str
    privileges: Privilege  # as read at login; actions read them again from the store
    via: Via
    opened: float
    last_used: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    """The open sessions, by their token's digest."""

    def __init__(self, *, idle_s: float = IDLE_S, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._now = monotonic
        self._open: dict[str, Session] = {}

    def open(
        self, engineer_id: uuid.UUID, login: str, privileges: Privilege, via: Via
    ) -> tuple[str, Session]:
        """A new session and its token (the only time the token exists in the clear here)."""
        self._expire()
        token = secrets.token_urlsafe(32)
        now = self._now()
        session = Session(engineer_id, login, privileges, via, now, now)
        self._open[_digest(token)] = session
        return token, session

    def get(self, token: str) -> Session | None:
        """The live session of `token`, touched; None for an unknown or expired one."""
        self._expire()
        session = self._open.get(_digest(token))
        if session is not None:
            session.last_used = self._now()
        return session

    def close(self, token: str) -> Session | None:
        return self._open.pop(_digest(token), None)

    def close_engineer(self, engineer_id: uuid.UUID) -> None:
        """End every session of an engineer the robot no longer knows."""
        for key in [k for k, s in self._open.items() if s.engineer_id == engineer_id]:
            del self._open[key]

    def expires_in(self, session: Session) -> float:
        return max(0.0, session.last_used + self.idle_s - self._now())

    def __len__(self) -> int:
        self._expire()
        return len(self._open)

    def _expire(self) -> None:
        now = self._now()
        for key in [k for k, s in self._open.items() if now - s.last_used >= self.idle_s]:
            del self._open[key]


class LoginGuard:
    """Counts failed logins robot-wide and locks logging in after `limit` of them (see the module)."""

    def __init__(
        self, *, limit: int = LIMIT, lock_s: float = LOCK_S, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.lock_s = lock_s
        self._now = monotonic
        self.failures = 0
        self._locked_until: float | None = None

    def locked_for(self) -> float:
        """Seconds the lock still holds (0: logins are open)."""
        if self._locked_until is None:
            return 0.0
        left = self._locked_until - self._now()
        if left <= 0:
            self._locked_until = None
            return 0.0
        return left

    def failed(self) -> bool:
        """Count a failure; True when it locked logging in."""
        self.failures += 1
        if self.failures < self.limit:
            return False
        self.failures = 0
        self._locked_until = self._now() + self.lock_s
        return True

    def succeeded(self) -> None:
        self.failures = 0
