"""Engineers' sessions on the local API, and the lock that five failed logins put on logging in.

A session is opened by a login and password or by an auth card, and named by a random token (`secrets`,
256 bits) that the client sends as `Authorization: Bearer ...`. Only the token's SHA-256 is kept, so not even
this process's memory holds a usable token once it is handed out; tokens are never logged. A session's `id`
is the first 16 hex digits of that digest: it names the session in live events and logs, and cannot be turned
back into the token. A session ends after `idle_s` without use, at logout, at the next tap of the card that
opened it, or when the agent stops (sessions are not persisted: an engineer logs in again after a restart);
`on_end(session, reason)` hears of each end.

Step-up: actions that move hardware or touch biometric data want the engineer's password once a session. A
password login is stepped up at once; a card login is not until the password is given (the server's
`POST /session/step-up`). A card session remembers its card only by the card's keyed hash (models/card_keys),
never the UID.

Failed logins are counted robot-wide, not per login or per card: the socket does not tell engineers apart,
and a per-login count would let someone with a stack of cloned cards, or a list of logins, try forever.
`limit` failures in a row (logins and step-ups alike) lock every login and step-up for `lock_s`; a success
resets the count. While locked, attempts are refused without being checked or counted (the lock does not
grow), so at most `limit` guesses fit in each `lock_s`. Times come from an injectable monotonic clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from models.privileges import Privilege

LIMIT: Final = 5
LOCK_S: Final = 300.0
IDLE_S: Final = 600.0
# A card reader may report a card held on it more than once: a tap of the same card this soon after its login
# is the same presentation, not the engineer tapping again to log out.
CARD_REPEAT_S: Final = 2.0
ID_CHARS: Final = 16

Via = Literal["password", "card"]
EndReason = Literal["card tapped again", "idle", "logged out", "engineer no longer known"]


@dataclass
class Session:
    id: str  # ID_CHARS hex digits of the token's SHA-256: not a secret
    engineer_id: uuid.UUID
    login: str
    privileges: Privilege  # as read at login; actions read them again from the store
    via: Via
    opened: float
    last_used: float
    stepped_up: bool = False
    card: str | None = None  # the keyed hash of the card that opened it (card logins), never the UID


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def session_id(token: str) -> str:
    """The non-secret id of the session `token` names."""
    return _digest(token)[:ID_CHARS]


class Sessions:
    """The open sessions, by their token's digest."""

    def __init__(
        self,
        *,
        idle_s: float = IDLE_S,
        monotonic: Callable[[], float] = time.monotonic,
        on_end: Callable[[Session, EndReason], None] | None = None,
    ) -> None:
        self.idle_s = idle_s
        self._now = monotonic
        self._open: dict[str, Session] = {}
        self.on_end = on_end

    def open(
        self,
        engineer_id: uuid.UUID,
        login: str,
        privileges: Privilege,
        via: Via,
        *,
        stepped_up: bool = False,
        card: str | None = None,
    ) -> tuple[str, Session]:
        """A new session and its token (the only time the token exists in the clear here)."""
        self.expire()
        token = secrets.token_urlsafe(32)
        now = self._now()
        digest = _digest(token)
        session = Session(
            digest[:ID_CHARS], engineer_id, login, privileges, via, now, now, stepped_up=stepped_up, card=card
        )
        self._open[digest] = session
        return token, session

    def get(self, token: str) -> Session | None:
        """The live session of `token`, touched; None for an unknown or expired one."""
        self.expire()
        session = self._open.get(_digest(token))
        if session is not None:
            session.last_used = self._now()
        return session

    def close(self, token: str, reason: EndReason = "logged out") -> Session | None:
        session = self._open.pop(_digest(token), None)
        if session is not None:
            self._ended(session, reason)
        return session

    def close_engineer(self, engineer_id: uuid.UUID) -> None:
        """End every session of an engineer the robot no longer knows."""
        for key in [k for k, s in self._open.items() if s.engineer_id == engineer_id]:
            self._ended(self._open.pop(key), "engineer no longer known")

    def close_card(self, card: str) -> list[Session]:
        """End the sessions the card with keyed hash `card` opened (but those it opened within
        CARD_REPEAT_S: the same presentation); the sessions ended."""
        self.expire()
        now = self._now()
        ended = [
            key
            for key, s in self._open.items()
            if s.card is not None and hmac.compare_digest(s.card, card) and now - s.opened >= CARD_REPEAT_S
        ]
        sessions = [self._open.pop(key) for key in ended]
        for session in sessions:
            self._ended(session, "card tapped again")
        return sessions

    def expires_in(self, session: Session) -> float:
        return max(0.0, session.last_used + self.idle_s - self._now())

    def __len__(self) -> int:
        self.expire()
        return len(self._open)

    def expire(self) -> None:
        """End the sessions unused for `idle_s`."""
        now = self._now()
        for key in [k for k, s in self._open.items() if now - s.last_used >= self.idle_s]:
            self._ended(self._open.pop(key), "idle")

    def _ended(self, session: Session, reason: EndReason) -> None:
        if self.on_end is not None:
            self.on_end(session, reason)


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
