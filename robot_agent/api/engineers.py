"""Who an engineer is, from the robot's synced copies of `engineers` and `auth_cards`; checked offline.

Passwords are checked with models/passwords.py, the same bcrypt the cloud sets them with; an unknown login
costs a bcrypt check too, so the answer's time does not tell which logins exist. Cards are matched by their
keyed hash (models/card_keys.py, the fleet's pepper) against every synced card in constant time each.
These functions block (bcrypt, SQLite): the API runs them in a worker thread.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from models.card_keys import PEPPER_BYTES, card_matches
from models.keyfiles import KeyFileProblem, check_private
from models.passwords import check_password, hash_password
from models.privileges import Privilege
from robot_agent.store.tables import ReplicaAuthCard, ReplicaEngineer

log = logging.getLogger(__name__)

_ENGINEERS = ReplicaEngineer.__table__  # type: ignore[attr-defined]
_CARDS = ReplicaAuthCard.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Engineer:
    id: uuid.UUID
    login: str
    privileges: Privilege


class _Dummy:
    """A bcrypt hash to check unknown logins against, made once when first needed."""

    stored: str | None = None

    @classmethod
    def get(cls) -> str:
        if cls.stored is None:
            cls.stored = hash_password("no engineer has this password")
        return cls.stored


def by_password(store: Engine, login: str, password: str) -> tuple[Engineer | None, uuid.UUID | None]:
    """(the engineer, their id) when the password is right; (None, their id) when wrong; (None, None) for
    an unknown login."""
    with store.connect() as conn:
        row = conn.execute(
            select(_ENGINEERS.c.id, _ENGINEERS.c.login, _ENGINEERS.c.password, _ENGINEERS.c.privileges).where(
                _ENGINEERS.c.login == login
            )
        ).first()
    if row is None:
        check_password(password, _Dummy.get())
        return None, None
    if not check_password(password, row.password):
        return None, row.id
    return Engineer(row.id, row.login, Privilege.of(row.privileges)), row.id


def password_matches(store: Engine, engineer_id: uuid.UUID, password: str) -> bool | None:
    """Whether `password` is the engineer's (a session's step-up); None: the robot no longer knows them."""
    with store.connect() as conn:
        stored = conn.execute(select(_ENGINEERS.c.password).where(_ENGINEERS.c.id == engineer_id)).scalar()
    if stored is None:
        return None
    return check_password(password, stored)


def by_card(store: Engine, pepper: bytes, uid: bytes) -> Engineer | None:
    """The engineer whose synced auth card this UID is; every card is compared (constant time each)."""
    with store.connect() as conn:
        cards = conn.execute(select(_CARDS.c.engineer_id, _CARDS.c.key)).all()
        found: uuid.UUID | None = None
        for card in cards:
            if card_matches(pepper, uid, card.key) and found is None:
                found = card.engineer_id
        if found is None:
            return None
        row = conn.execute(
            select(_ENGINEERS.c.id, _ENGINEERS.c.login, _ENGINEERS.c.privileges).where(
                _ENGINEERS.c.id == found
            )
        ).first()
    return None if row is None else Engineer(row.id, row.login, Privilege.of(row.privileges))


def by_id(store: Engine, engineer_id: uuid.UUID) -> Engineer | None:
    """The engineer as the robot knows them now (privileges may have changed since login)."""
    with store.connect() as conn:
        row = conn.execute(
            select(_ENGINEERS.c.id, _ENGINEERS.c.login, _ENGINEERS.c.privileges).where(
                _ENGINEERS.c.id == engineer_id
            )
        ).first()
    return None if row is None else Engineer(row.id, row.login, Privilege.of(row.privileges))


def load_card_pepper(path: Path) -> bytes | None:
    """The fleet's card pepper, or None (logged, never its bytes) when the robot has no usable copy: then
    logins are by password only."""
    if not path.exists():
        log.warning("card login off: no card key at %s (`cloud-sync robot provision` writes it)", path)
        return None
    try:
        check_private(path)
        pepper = path.read_bytes()
    except (KeyFileProblem, OSError) as err:
        log.warning("card login off: %s", err)
        return None
    if len(pepper) != PEPPER_BYTES:
        log.warning("card login off: %s holds %d bytes, not %d", path, len(pepper), PEPPER_BYTES)
        return None
    return pepper
