"""The robot's ticket desk: a code shown to it is verified offline, recorded, and a valid ticket is used up.
A passenger the camera recognises is checked the same way, with their ticket's token from the robot's copy.

Everything the check needs is local: the cloud's signing keys (synced into `signing_keys`, or the
provisioning's trust.json before the first sync), its revocations, this robot's assignment (synced, or the
train in robot.toml), and the ledger of tickets this robot accepted. Each check writes its `ticket.checked`
event to the outbox and, for a valid ticket, the ledger row, in one transaction: the cloud hears of exactly
the checks the robot made, and a ticket cannot be accepted twice here even while the robot is offline.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import uuid
import zoneinfo
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, insert, select

from models.base_api import TrustList
from models.sync_events import TicketChecked
from models.tickets import (
    Assignment,
    TicketError,
    TrustedKey,
    Verdict,
    decode_ticket,
    split_code,
    verify_ticket,
)
from robot_agent.clock import Clock
from robot_agent.config import RobotConfig
from robot_agent.errors import ConfigError, ConfigProblem
from robot_agent.store import activity
from robot_agent.store.tables import (
    ReplicaAssignment,
    ReplicaRevocation,
    ReplicaSigningKey,
    ReplicaTicket,
    ReplicaTicketToken,
    UsedTicket,
)

log = logging.getLogger(__name__)

_USED = UsedTicket.__table__  # type: ignore[attr-defined]
_TICKETS = ReplicaTicket.__table__  # type: ignore[attr-defined]
_TOKENS = ReplicaTicketToken.__table__  # type: ignore[attr-defined]
_REVOKED = ReplicaRevocation.__table__  # type: ignore[attr-defined]
_KEYS = ReplicaSigningKey.__table__  # type: ignore[attr-defined]
_ASSIGNED = ReplicaAssignment.__table__  # type: ignore[attr-defined]


class CheckMethod(StrEnum):
    """How a code reached the robot (for a face: how the passenger did)."""

    CAMERA = "camera"
    IMAGE = "image"
    TOKEN = "token"
    FACE = "face"  # the camera recognised the passenger; their ticket's token came from the robot's copy


@dataclass(frozen=True)
class CheckOutcome:
    """What the robot answered, and the check's outbox event (`seq`)."""

    verdict: Verdict
    reason: str
    ticket_id: uuid.UUID | None
    method: CheckMethod
    at: dt.datetime
    train_number: int
    seq: int

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VALID

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "ticket_id": str(self.ticket_id) if self.ticket_id else None,
            "method": self.method.value,
            "checked_at": self.at.isoformat(),
            "train_number": self.train_number,
            "seq": self.seq,
        }


def load_trust_file(path: Path) -> list[TrustedKey]:
    """The keys of a trust.json (`cloud-sync robot provision`); raises `ConfigError` naming the problem."""
    try:
        document = TrustList.model_validate_json(path.read_bytes())
        return [
            TrustedKey(
                bytes.fromhex(key.kid),
                base64.urlsafe_b64decode(key.x + "=" * (-len(key.x) % 4)),
                key.valid_from,
                key.valid_to,
            )
            for key in document.keys
        ]
    except (OSError, ValidationError, ValueError) as err:
        problem = err.strerror if isinstance(err, OSError) else str(err).splitlines()[0]
        raise ConfigError(
            path, [ConfigProblem("tickets.trust_file", f"not a trust list: {problem}")]
        ) from err


def ticket_id_of(code: str) -> uuid.UUID | None:
    """The ticket id a code names, unverified (for debouncing and records), or None if it names none."""
    try:
        return decode_ticket(split_code(code)[0]).claims.ticket_id
    except TicketError:
        return None


class TicketDesk:
    """Checks codes against the robot's store. Checks in several processes (the agent, `verify-ticket`) take
    turns on the database, so a ticket is accepted once."""

    def __init__(self, store: Engine, config: RobotConfig, clock: Clock | None = None) -> None:
        self._store = store
        self._robot_id = config.robot.id
        self._default_train = config.assignment.train_number
        self._zone = zoneinfo.ZoneInfo(config.assignment.timezone)
        settings = config.tickets
        self._file_keys = load_trust_file(settings.trust_file) if settings.trust_file else []
        self._tolerance = dt.timedelta(seconds=settings.clock_tolerance_s)
        self._holder_window = dt.timedelta(seconds=settings.holder_window_s)
        self._clock = clock or Clock()

    def check(self, code: str, method: CheckMethod, now: dt.datetime | None = None) -> CheckOutcome:
        """Verify `code`, record the check and, if valid, use the ticket up; all in one transaction."""
        now = now or dt.datetime.now(dt.UTC)
        with self._store.begin() as conn:
            # IMMEDIATE: the write lock before the first read, so that two processes checking one ticket
            # take turns (a deferred transaction would find its snapshot stale at its first write, in WAL).
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            outcome = self._verify_and_record(conn, code, method, now, self._assignment(conn, now))
        self._log(outcome)
        return outcome

    def assignment(self, now: dt.datetime | None = None) -> Assignment:
        """The train this robot serves now (its newest synced assignment begun, else robot.toml's)."""
        with self._store.connect() as conn:
            return self._assignment(conn, now or dt.datetime.now(dt.UTC))

    def check_face(self, user_id: uuid.UUID, now: dt.datetime | None = None) -> CheckOutcome | None:
        """Check the ticket of a passenger the camera recognised, as if they had shown its code: their ticket
        on the train this robot serves now is verified from its token in the robot's copy, recorded and used
        up exactly as `check` does it, with method `face`. None, and nothing recorded, when the robot holds
        no ticket (with its token) of theirs on that train.

        The face stands for a wallet's live holder proof (`verify_ticket(holder_proven=True)`); every other
        check runs. Of several tickets, today's (in the assignment's timezone) come first, unused before used.
        """
        now = now or dt.datetime.now(dt.UTC)
        with self._store.begin() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            assignment = self._assignment(conn, now)
            token = self._token_of(conn, user_id, assignment)
            if token is None:
                outcome = None
            else:
                outcome = self._verify_and_record(
                    conn, token, CheckMethod.FACE, now, assignment, holder_proven=True
                )
        if outcome is None:
            # No user id: who was recognised is not the log's business.
            log.info("a recognised passenger holds no ticket for train=%d here", assignment.train_number)
            return None
        self._log(outcome)
        return outcome

    def _token_of(self, conn: Connection, user_id: uuid.UUID, assignment: Assignment) -> str | None:
        """The token of the passenger's ticket to check on `assignment`'s train, if the robot holds one."""
        query = (
            select(
                _TICKETS.c.id,
                _TICKETS.c.date,
                _TICKETS.c.used,
                _TOKENS.c.token,
                _USED.c.ticket_id.label("used_here"),
            )
            .join(_TOKENS, _TOKENS.c.ticket_id == _TICKETS.c.id)
            .outerjoin(_USED, _USED.c.ticket_id == _TICKETS.c.id)
            .where(_TICKETS.c.user_id == user_id, _TICKETS.c.train_number == assignment.train_number)
        )
        rows = conn.execute(query).all()
        if not rows:
            return None
        # Today's first, unused first, then the nearest day; the id last, so that the choice is stable.
        today = assignment.date

        def order(row: Any) -> tuple[bool, bool, int, dt.datetime, uuid.UUID]:
            day = assignment.local_date(row.date)
            used = bool(row.used) or row.used_here is not None
            return (day != today, used, abs((day - today).days), row.date, row.id)

        best: str = min(rows, key=order).token
        return best

    def _verify_and_record(
        self,
        conn: Connection,
        code: str,
        method: CheckMethod,
        now: dt.datetime,
        assignment: Assignment,
        *,
        holder_proven: bool = False,
    ) -> CheckOutcome:
        used_here: dict[uuid.UUID, dt.datetime] = {}

        def is_used(ticket_id: uuid.UUID) -> bool:
            row = conn.execute(select(_USED.c.at).where(_USED.c.ticket_id == ticket_id)).first()
            if row is not None:
                used_here[ticket_id] = row.at
                return True
            used = conn.execute(select(_TICKETS.c.used).where(_TICKETS.c.id == ticket_id)).scalar()
            return bool(used)

        def is_revoked(ticket_id: uuid.UUID) -> bool:
            query = select(_REVOKED.c.ticket_id).where(_REVOKED.c.ticket_id == ticket_id)
            return conn.execute(query).first() is not None

        result = verify_ticket(
            code,
            trust=self._trust(conn),
            now=now,
            clock_tolerance=self._tolerance,
            assignment=assignment,
            is_revoked=is_revoked,
            is_used=is_used,
            holder_window=self._holder_window,
            holder_proven=holder_proven,
        )
        ticket_id = result.claims.ticket_id if result.claims else None
        reason = result.reason
        if result.verdict is Verdict.ALREADY_USED and ticket_id is not None:
            if ticket_id in used_here:
                local = used_here[ticket_id].astimezone(self._zone)
                reason = f"already checked by this robot at {local:%H:%M} ({local:%Y-%m-%d})"
            else:
                reason = "already used: another robot checked it (the cloud says so)"
        event = TicketChecked(
            ticket_id=ticket_id,
            verdict=result.verdict.value,
            train_number=assignment.train_number,
            at=now,
            method=method.value,
        )
        seq = activity.record(conn, event, self._clock)
        if result.ok:
            assert ticket_id is not None
            conn.execute(insert(_USED).values(ticket_id=ticket_id, seq=seq, at=now))
        return CheckOutcome(result.verdict, reason, ticket_id, method, now, assignment.train_number, seq)

    @staticmethod
    def _log(outcome: CheckOutcome) -> None:
        log.info(
            "ticket checked verdict=%s ticket=%s method=%s seq=%d",
            outcome.verdict.value,
            outcome.ticket_id,
            outcome.method.value,
            outcome.seq,
        )

    def _trust(self, conn: Connection) -> list[TrustedKey]:
        keys = list(self._file_keys)
        known = {(key.kid, key.valid_from) for key in keys}
        for row in conn.execute(select(_KEYS)).all():
            try:
                key = TrustedKey.from_public_key(
                    bytes.fromhex(row.public_key), valid_from=row.created_at, valid_to=row.retired_at
                )
            except ValueError as err:
                log.warning("a synced signing key is unusable kid=%s: %s", row.kid, err)
                continue
            if (key.kid, key.valid_from) not in known:
                keys.append(key)
        return keys

    def _assignment(self, conn: Connection, now: dt.datetime) -> Assignment:
        """The train this robot serves now: its newest synced assignment that has begun, else robot.toml's
        train on today's date."""
        today = now.astimezone(self._zone).date()
        query = (
            select(_ASSIGNED.c.train_number, _ASSIGNED.c.train_date)
            .where(_ASSIGNED.c.robot_id == self._robot_id, _ASSIGNED.c.train_date <= today)
            .order_by(_ASSIGNED.c.train_date.desc())
            .limit(1)
        )
        row = conn.execute(query).first()
        train, date = (row.train_number, row.train_date) if row else (self._default_train, today)
        return Assignment(train_number=train, date=date, timezone=self._zone.key)
