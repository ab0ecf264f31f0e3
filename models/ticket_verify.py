"""Offline verification of RB1 tickets: every check in a fixed order, the first failure is the verdict.

Pure code, no I/O: the trust list, the clock, the robot's assignment and the revocation and use lookups are
all passed in. `docs/tickets.md` lists the checks and their verdicts.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from models.cose import key_id
from models.ticket_claims import TicketClaims, decode_claims
from models.ticket_codec import TicketEnvelope, TicketFormatError, Verdict, decode_envelope
from models.ticket_holder import DEFAULT_HOLDER_WINDOW, HolderProof, holder_message, split_code


def _require_aware(name: str, value: dt.datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")


@dataclass(frozen=True)
class TrustedKey:
    """A ticket-signing public key and the period in which it may issue tickets.

    The key was valid at issue time when `valid_from <= iat` and (`valid_to` is None or `iat <= valid_to`).
    """

    kid: bytes
    public_key: bytes  # raw 32 bytes
    valid_from: dt.datetime
    valid_to: dt.datetime | None = None

    def __post_init__(self) -> None:
        # A kid that is not the key's own would make the trust list disagree with every token it signed.
        if self.kid != key_id(self.public_key):
            raise ValueError(
                f"kid {self.kid.hex()} is not key_id(public_key) = {key_id(self.public_key).hex()}"
            )
        _require_aware("valid_from", self.valid_from)
        if self.valid_to is not None:
            _require_aware("valid_to", self.valid_to)
            if self.valid_to < self.valid_from:
                raise ValueError("valid_to is before valid_from")

    @classmethod
    def from_public_key(
        cls, public_key: bytes, *, valid_from: dt.datetime, valid_to: dt.datetime | None = None
    ) -> TrustedKey:
        """A trust-list entry for a raw 32-byte Ed25519 public key, its kid computed."""
        return cls(key_id(public_key), public_key, valid_from, valid_to)

    def valid_at(self, when: dt.datetime) -> bool:
        """Whether the key may have issued a ticket at `when` (an `iat`, in whole seconds)."""
        # `iat` is truncated to the second, so a key created at 10:00:00.5 must cover a ticket it signed at
        # 10:00:00.7 even though that ticket says 10:00:00.
        start = self.valid_from.replace(microsecond=0)
        return start <= when and (self.valid_to is None or when <= self.valid_to)

    def describe_validity(self) -> str:
        """`valid_from .. valid_to` for reasons."""
        end = self.valid_to.isoformat() if self.valid_to else "no end"
        return f"{self.valid_from.isoformat()} .. {end}"


@dataclass(frozen=True)
class Assignment:
    """The train and day a robot serves; `timezone` (IANA) is where the ticket's `date` is read."""

    train_number: int
    date: dt.date
    timezone: str

    def __post_init__(self) -> None:
        # A datetime is a date to Python but never equals one: it would turn every ticket into WRONG_DATE.
        if isinstance(self.date, dt.datetime):
            raise ValueError("Assignment.date must be a date, not a datetime")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown timezone {self.timezone!r}") from err

    def local_date(self, when: dt.datetime) -> dt.date:
        """The calendar date of `when` in the assignment's timezone."""
        return when.astimezone(zoneinfo.ZoneInfo(self.timezone)).date()


@dataclass(frozen=True)
class VerificationResult:
    """A verdict and its reason. `claims` are set once the signature has verified; `kid` once it was read."""

    verdict: Verdict
    reason: str
    claims: TicketClaims | None
    kid: bytes | None

    @property
    def ok(self) -> bool:
        """True only for `Verdict.VALID`."""
        return self.verdict is Verdict.VALID


def _never(ticket_id: uuid.UUID) -> bool:
    return False


@functools.lru_cache(maxsize=64)
def _ed25519_key(raw: bytes) -> Ed25519PublicKey:
    # Parsing the key is ~2 us a ticket; trust lists hold a handful of keys, so each is parsed once. A cache
    # keyed by the bytes rather than state on TrustedKey keeps the dataclass plain (picklable, comparable).
    return Ed25519PublicKey.from_public_bytes(raw)


def _signed_by(envelope: TicketEnvelope, candidates: Sequence[TrustedKey]) -> list[TrustedKey]:
    """The entries among `candidates` whose key made the signature (one key may have several periods)."""
    message = envelope.to_be_signed()
    signers: list[TrustedKey] = []
    for entry in candidates:
        try:
            _ed25519_key(entry.public_key).verify(envelope.signature, message)
        except (InvalidSignature, ValueError):
            continue
        signers.append(entry)
    return signers


def _holder_failure(
    envelope: TicketEnvelope,
    claims: TicketClaims,
    proof: HolderProof | None,
    now: dt.datetime,
    window: dt.timedelta,
) -> tuple[Verdict, str] | None:
    """Why the code fails holder binding (models.ticket_holder), or None when it passes or is not bound."""
    if claims.holder_key is None:
        if proof is None:
            return None
        return Verdict.BAD_HOLDER_PROOF, "the code carries a holder proof but the ticket names no holder key"
    if proof is None:
        return (
            Verdict.HOLDER_PROOF_MISSING,
            "the ticket is bound to its holder's wallet: it must be shown as the wallet's live code",
        )
    try:
        _ed25519_key(claims.holder_key).verify(
            proof.signature, holder_message(envelope.signature, proof.at_seconds)
        )
    except (InvalidSignature, ValueError):
        return Verdict.BAD_HOLDER_PROOF, "the holder proof does not verify with the ticket's holder key"
    age = now - proof.at
    if abs(age) > window:
        made, before = ("made", "before") if age > dt.timedelta(0) else ("dated", "after")
        return (
            Verdict.HOLDER_PROOF_STALE,
            f"live code {made} at {proof.at.isoformat()}, {abs(age).total_seconds():.0f} s "
            f"{before} now ({now.astimezone(dt.UTC).isoformat()}); "
            f"a live code is good for {window.total_seconds():.0f} s: a photo or screenshot?",
        )
    return None


def verify_ticket(
    token: str,
    *,
    trust: Sequence[TrustedKey],
    now: dt.datetime,
    clock_tolerance: dt.timedelta = dt.timedelta(minutes=5),
    assignment: Assignment | None = None,
    is_revoked: Callable[[uuid.UUID], bool] = _never,
    is_used: Callable[[uuid.UUID], bool] = _never,
    holder_window: dt.timedelta = DEFAULT_HOLDER_WINDOW,
    holder_proven: bool = False,
) -> VerificationResult:
    """Run every check on `token` (a bare token, or a live code with its holder proof) in order and return
    the first failure, or `VALID`.

    `holder_proven` says the verifier established the holder by other means (the robot recognised the
    passenger's face and took the token from its own copy): a bare token of a ticket bound to a wallet then
    stands without the wallet's live proof. Every other check still runs, and a proof that is given is still
    checked.

    Never raises for any token. Raises `ValueError` for a naive `now` or a negative tolerance (caller bugs);
    exceptions from `is_revoked` and `is_used` propagate, since a failed lookup says nothing about the ticket.
    """
    _require_aware("now", now)
    if clock_tolerance < dt.timedelta(0) or holder_window < dt.timedelta(0):
        raise ValueError("clock_tolerance and holder_window must not be negative")
    try:
        token, proof = split_code(token)
        envelope = decode_envelope(token)
    except TicketFormatError as err:
        return VerificationResult(err.verdict, err.reason, None, None)
    kid = envelope.kid

    def fail(verdict: Verdict, reason: str, claims: TicketClaims | None = None) -> VerificationResult:
        return VerificationResult(verdict, reason, claims, kid)

    candidates = [entry for entry in trust if entry.kid == kid]
    if not candidates:
        return fail(Verdict.UNKNOWN_KEY, f"kid {kid.hex()} not in trust list")
    signers = _signed_by(envelope, candidates)
    if not signers:
        return fail(Verdict.BAD_SIGNATURE, f"signature does not verify with key {kid.hex()}")
    try:
        claims = decode_claims(envelope.payload)
    except TicketFormatError as err:
        return fail(err.verdict, err.reason)

    if not any(entry.valid_at(claims.issued_at) for entry in signers):
        periods = "; ".join(entry.describe_validity() for entry in signers)
        return fail(
            Verdict.KEY_NOT_VALID_AT_ISSUE,
            f"issued at {claims.issued_at.isoformat()} but key {kid.hex()} is trusted for {periods}",
            claims,
        )
    holder_failure = (
        None
        if holder_proven and proof is None
        else _holder_failure(envelope, claims, proof, now, holder_window)
    )
    if holder_failure is not None:
        return fail(*holder_failure, claims)

    def clock() -> str:  # only for the reasons of a failure: a valid ticket needs no formatting
        return f"(now {now.astimezone(dt.UTC).isoformat()}, tolerance {clock_tolerance})"

    # Arithmetic on `now`, never on a claim: nothing a token says can push a datetime out of range.
    if now + clock_tolerance < claims.not_before:
        return fail(
            Verdict.NOT_YET_VALID, f"not valid before {claims.not_before.isoformat()} {clock()}", claims
        )
    if now + clock_tolerance < claims.issued_at:
        # A ticket from the future means a wrong clock on one side; its window cannot be trusted yet.
        return fail(
            Verdict.NOT_YET_VALID,
            f"issued in the future, at {claims.issued_at.isoformat()} {clock()}",
            claims,
        )
    # RFC 8392: a token must not be accepted on or after `exp`.
    if now - clock_tolerance >= claims.expires_at:
        return fail(Verdict.EXPIRED, f"expired at {claims.expires_at.isoformat()} {clock()}", claims)
    if assignment is not None:
        if claims.train_number != assignment.train_number:
            return fail(
                Verdict.WRONG_TRAIN,
                f"ticket is for train {claims.train_number}, the robot serves {assignment.train_number}",
                claims,
            )
        ticket_day = assignment.local_date(claims.date)
        if ticket_day != assignment.date:
            return fail(
                Verdict.WRONG_DATE,
                f"ticket is for {ticket_day.isoformat()} ({assignment.timezone}), "
                f"the robot serves {assignment.date.isoformat()}",
                claims,
            )
    if is_revoked(claims.ticket_id):
        return fail(Verdict.REVOKED, f"ticket {claims.ticket_id} is revoked", claims)
    if is_used(claims.ticket_id):
        return fail(Verdict.ALREADY_USED, f"ticket {claims.ticket_id} was already used", claims)
    return VerificationResult(Verdict.VALID, f"ticket {claims.ticket_id} is valid", claims, kid)
