"""Issuing signed ticket tokens, and verifying them with the very verifier the robots run offline."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.tables import TicketRevocation, TicketToken
from cloud_sync.desks.signing import KeyRing
from cloud_sync.errors import InvalidInput
from models.base_api import TICKET_LATEST, VerifyOut, VerifyRequest
from models.base_server import Ticket
from models.columns import utcnow
from models.instants import rfc3339
from models.tickets import (
    Assignment,
    TicketClaims,
    TicketError,
    decode_ticket,
    encode_ticket,
    split_code,
    verify_ticket,
)

# The longest scheduled trip (Moscow-Vladivostok) takes about seven days; a ticket stays valid one more.
DEFAULT_VALIDITY = dt.timedelta(days=8)


def claims_for(
    ticket: Ticket, now: dt.datetime, valid_until: dt.datetime | None, holder_key: bytes | None = None
) -> TicketClaims:
    """The claims a ticket row's token carries; times in whole seconds, as CWT keeps them."""
    issued = now.replace(microsecond=0)
    expires = (valid_until or ticket.start_date + DEFAULT_VALIDITY).astimezone(dt.UTC).replace(microsecond=0)
    return TicketClaims(
        ticket_id=ticket.id,
        user_id=ticket.user_id,
        train_number=ticket.train_number,
        wagon_number=ticket.wagon_number,
        place_number=ticket.place_number,
        date=ticket.date.astimezone(dt.UTC).replace(microsecond=0),
        station_id=ticket.station_id,
        destination_id=ticket.destination_id,
        start_date=ticket.start_date.astimezone(dt.UTC).replace(microsecond=0),
        code=ticket.code,
        holder_key=holder_key,
        issued_at=issued,
        not_before=issued,
        expires_at=expires,
    )


async def issue_token(
    session: AsyncSession,
    keys: KeyRing,
    ticket: Ticket,
    valid_until: dt.datetime | None,
    holder_key: bytes | None = None,
) -> TicketToken:
    """Sign a token for a ticket with the active key and keep it beside the ticket (not committed).

    Raises InvalidInput when the token would be expired or outlast what a ticket can carry, NoSigningKey
    when there is no key to sign with."""
    now = utcnow()
    expires = valid_until or ticket.start_date + DEFAULT_VALIDITY
    field = "valid_until" if valid_until is not None else "start_date"
    if expires <= now:
        raise InvalidInput(
            ["body", field], f"the ticket would have expired already, at {expires.isoformat()}"
        )
    if expires > TICKET_LATEST:  # only the default can: valid_until is bounded by its type
        raise InvalidInput(
            ["body", "start_date"],
            f"the default validity (start_date + {DEFAULT_VALIDITY.days} days) would end after "
            f"{rfc3339(TICKET_LATEST)}, the last time a ticket can carry: give valid_until",
        )
    active = await keys.active(session)
    # Issued after the key was chosen, never before: a key just read from the database was created before
    # this instant, and one remembered is still in its trust period (KeyRing.active).
    claims = claims_for(ticket, utcnow(), valid_until, holder_key)
    row = TicketToken(
        ticket_id=ticket.id,
        kid=active.kid.hex(),
        token=encode_ticket(claims, active.private_key),
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
    )
    session.add(row)
    return row


async def verify(session: AsyncSession, keys: KeyRing, request: VerifyRequest) -> VerifyOut:
    """Verify a token against the trust list, the revocations and the used flags the cloud holds."""
    revoked: set[uuid.UUID] = set()
    used: set[uuid.UUID] = set()
    try:
        ticket_id = decode_ticket(split_code(request.token)[0]).claims.ticket_id
    except TicketError:
        ticket_id = None  # the verifier below names what is wrong with it
    if ticket_id is not None:
        if await session.get(TicketRevocation, ticket_id) is not None:
            revoked.add(ticket_id)
        ticket = await session.get(Ticket, ticket_id)
        if ticket is not None and ticket.used:
            used.add(ticket_id)
    assignment = (
        Assignment(train_number=request.train_number, date=request.date, timezone=request.timezone)
        if request.train_number is not None and request.date is not None
        else None
    )
    result = verify_ticket(
        request.token,
        trust=await keys.trust_list(session),
        now=utcnow(),
        assignment=assignment,
        is_revoked=revoked.__contains__,
        is_used=used.__contains__,
    )
    return VerifyOut(
        ok=result.ok,
        verdict=result.verdict.value,
        reason=result.reason,
        ticket_id=result.claims.ticket_id if result.claims is not None else None,
    )
