"""The Base API under /base_api: admin resources (users, tickets, engineers, auth cards, robots, their
assignments, hotels, attractions, train stores, active stores), the ticket trust list, and what robots ask."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from typing import Any

import segno
from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import Row
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.tables import RobotAssignment, Role, TicketRevocation, TicketToken
from cloud_sync.desks.faces import forget_faces
from cloud_sync.desks.robots import robot_row
from cloud_sync.desks.signing import NoSigningKey, trust_document
from cloud_sync.desks.tickets import issue_token, verify
from cloud_sync.sync import gaps
from cloud_sync.web.context import CloudContext, context
from cloud_sync.web.resources import Resource, add_admin_routes, commit_or_409, fetch_page, get_or_404
from cloud_sync.web.routing import Api, Call, HTTPError, NoInput
from models import base_api as schemas
from models.base_server import (
    ActiveStore,
    Attraction,
    AuthCard,
    Engineer,
    Hotel,
    Robot,
    Ticket,
    TrainStore,
    User,
)
from models.passwords import hash_password
from models.store_api import Page, PageQuery
from models.store_server import Store

log = logging.getLogger(__name__)

PREFIX = "/base_api"
ADMIN = (Role.ADMIN,)
ROBOT_OR_ADMIN = (Role.ROBOT, Role.ADMIN)


def _copier(table: type[Any]) -> Any:
    """A resource's row made from its request body, field for field."""

    async def to_row(body: Any, _ctx: CloudContext, _session: AsyncSession) -> Any:
        return table.model_validate(body.model_dump())

    return to_row


def _exists(table: type[Any], field: str, what: str) -> Any:
    async def check(body: Any, session: AsyncSession) -> None:
        await get_or_404(session, table, getattr(body, field), what)

    return check


async def _robot_row(body: schemas.RobotCreate, _ctx: CloudContext, _session: AsyncSession) -> Robot:
    return robot_row(body)


async def _engineer_row(body: schemas.EngineerCreate, _ctx: CloudContext, _session: AsyncSession) -> Engineer:
    # bcrypt is slow on purpose (~0.2 s); off the event loop so other requests go on.
    hashed = await asyncio.to_thread(hash_password, body.password)
    return Engineer(login=body.login, password=hashed, privileges=body.privileges)


async def _card_row(body: schemas.AuthCardCreate, ctx: CloudContext, _session: AsyncSession) -> AuthCard:
    return AuthCard(engineer_id=body.engineer_id, key=ctx.keys.card_key(body.uid))


async def _forget_faces(session: AsyncSession, user: User) -> None:
    """A user deleted takes their enrolled faces along (a user with tickets is kept: 409)."""
    await forget_faces(session, user.id)


RESOURCES: list[Resource[Any, Any]] = [
    Resource(
        "user",
        "users",
        "user",
        User,
        schemas.UserCreate,
        schemas.UserOut,
        _copier(User),
        before_delete=_forget_faces,
    ),
    Resource(
        "engineer",
        "engineers",
        "engineer",
        Engineer,
        schemas.EngineerCreate,
        schemas.EngineerOut,
        _engineer_row,
    ),
    Resource(
        "auth_card",
        "auth_cards",
        "auth card",
        AuthCard,
        schemas.AuthCardCreate,
        schemas.AuthCardOut,
        _card_row,
        _exists(Engineer, "engineer_id", "engineer"),
    ),
    Resource("robot", "robots", "robot", Robot, schemas.RobotCreate, schemas.RobotOut, _robot_row),
    Resource(
        "assignment",
        "assignments",
        "robot assignment",
        RobotAssignment,
        schemas.AssignmentCreate,
        schemas.AssignmentOut,
        _copier(RobotAssignment),
        _exists(Robot, "robot_id", "robot"),
    ),
    Resource("hotel", "hotels", "hotel", Hotel, schemas.PlaceCreate, schemas.PlaceOut, _copier(Hotel)),
    Resource(
        "attraction",
        "attractions",
        "attraction",
        Attraction,
        schemas.PlaceCreate,
        schemas.PlaceOut,
        _copier(Attraction),
    ),
    Resource(
        "train_store",
        "train_stores",
        "train store",
        TrainStore,
        schemas.TrainStoreCreate,
        schemas.TrainStoreOut,
        _copier(TrainStore),
        _exists(Store, "store_id", "store"),
    ),
    Resource(
        "active_store",
        "active_stores",
        "active store",
        ActiveStore,
        schemas.ActiveStoreCreate,
        schemas.ActiveStoreOut,
        _copier(ActiveStore),
    ),
]


async def _ticket_out(session: AsyncSession, ticket: Ticket | Row[Any]) -> schemas.TicketOut:
    token = await session.get(TicketToken, ticket.id)
    revoked = await session.get(TicketRevocation, ticket.id)
    fields = {name: getattr(ticket, name) for name in Ticket.model_fields}
    return schemas.TicketOut(
        **fields, revoked=revoked is not None, token=token.token if token is not None else None
    )


async def _ticket_row(body: schemas.TicketCreate, ctx: CloudContext, session: AsyncSession) -> Ticket:
    """A ticket and its signed token, in the session (flushed: the token refers to the ticket's id)."""
    ticket = Ticket(
        user_id=body.user_id,
        train_number=body.train_number,
        wagon_number=body.wagon_number,
        place_number=body.place_number,
        date=body.date,
        station_id=body.station_id,
        destination_id=body.destination_id,
        start_date=body.start_date,
        code=body.code or uuid.uuid4().hex[:16].upper(),
    )
    session.add(ticket)
    await session.flush()
    holder = bytes.fromhex(body.holder_key) if body.holder_key else None
    try:
        await issue_token(session, ctx.keys, ticket, body.valid_until, holder)
    except NoSigningKey as err:
        log.warning("ticket not issued user=%s: %s", body.user_id, err)
        raise HTTPError(503, str(err)) from err
    return ticket


async def _ticket_goes(session: AsyncSession, ticket: Ticket) -> None:
    """A ticket deleted takes its token and revocation along through the session, so that robots hear of
    them (the database's cascade would remove them unseen); the passenger's face embeddings leave its train
    with the ticket (cloud_sync/db/changes.py). A revocation removed this way does not bring them back first:
    the change log reads a revocation deleted on its own as nothing for faces."""
    for row in (await session.get(TicketToken, ticket.id), await session.get(TicketRevocation, ticket.id)):
        if row is not None:
            await session.delete(row)
    await session.flush()


TICKETS: Resource[Ticket, schemas.TicketOut] = Resource(
    "ticket",
    "tickets",
    "ticket",
    Ticket,
    schemas.TicketCreate,
    schemas.TicketOut,
    _ticket_row,
    _exists(User, "user_id", "user"),
    present=_ticket_out,
    before_delete=_ticket_goes,
    summaries={"create": "Issue a ticket and its signed token"},
)


def register(api: Api) -> None:
    admin_tag = "Base API: admin"
    for resource in [*RESOURCES, TICKETS]:
        add_admin_routes(api, f"{PREFIX}/admin", admin_tag, resource, ADMIN)

    @api.route(
        "GET",
        f"{PREFIX}/admin/ticket/{{id}}/qr.png",
        summary="The ticket's QR code",
        tag=admin_tag,
        response=None,
        roles=ADMIN,
        media_type="image/png",
    )
    async def ticket_qr(call: Call[None, NoInput]) -> web.StreamResponse:
        async with context(call.app).sessions() as session:
            ticket = await get_or_404(session, Ticket, call.path["id"], "ticket")
            token = await session.get(TicketToken, ticket.id)
        if token is None:
            raise HTTPError(404, f"ticket {ticket.id} has no token")
        png = io.BytesIO()
        segno.make_qr(token.token, error="m").save(png, kind="png", scale=6, border=4)
        return web.Response(body=png.getvalue(), content_type="image/png")

    @api.route(
        "POST",
        f"{PREFIX}/admin/ticket/{{id}}/revoke",
        summary="Revoke a ticket",
        tag=admin_tag,
        response=schemas.TicketOut,
        body=schemas.RevokeBody,
        roles=ADMIN,
    )
    async def revoke_ticket(call: Call[schemas.RevokeBody, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            ticket = await get_or_404(session, Ticket, call.path["id"], "ticket")
            if await session.get(TicketRevocation, ticket.id) is None:
                session.add(TicketRevocation(ticket_id=ticket.id, reason=call.body.reason))
                await commit_or_409(session, f"revocation of ticket {ticket.id}")
            return await _ticket_out(session, ticket)

    @api.route(
        "GET",
        f"{PREFIX}/admin/sync/gaps",
        summary="Gaps in each robot's sequence numbers",
        tag=admin_tag,
        response=schemas.SeqGaps,
        roles=ADMIN,
    )
    async def sync_gaps(call: Call[None, NoInput]) -> BaseModel:
        """Per robot that has sent a batch: its highest seq, and the seqs below it that never arrived."""
        async with context(call.app).engine.connect() as conn:
            return await gaps.report(conn)

    public_tag = "Base API: keys"

    @api.route(
        "GET", f"{PREFIX}/keys", summary="The ticket trust list", tag=public_tag, response=schemas.TrustList
    )
    async def trust_list(call: Call[None, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            keys = await context(call.app).keys.trust_list(session)
        return trust_document(keys)

    robot_tag = "Base API: robot"

    @api.route(
        "POST",
        f"{PREFIX}/robot/ticket/verify",
        summary="Verify a ticket token as a robot would",
        tag=robot_tag,
        response=schemas.VerifyOut,
        body=schemas.VerifyRequest,
        roles=ROBOT_OR_ADMIN,
    )
    async def verify_ticket(call: Call[schemas.VerifyRequest, NoInput]) -> BaseModel:
        ctx = context(call.app)
        async with ctx.sessions() as session:
            return await verify(session, ctx.keys, call.body)

    @api.route(
        "GET",
        f"{PREFIX}/users/{{user_id}}",
        summary="A passenger",
        tag=robot_tag,
        response=schemas.UserOut,
        roles=ROBOT_OR_ADMIN,
    )
    async def get_user(call: Call[None, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            user = await get_or_404(session, User, call.path["user_id"], "user")
        return schemas.UserOut.model_validate(user, from_attributes=True)

    for kind, table in (("hotels", Hotel), ("attractions", Attraction)):
        _add_destination_route(api, robot_tag, kind, table)


def _add_destination_route(api: Api, tag: str, kind: str, table: type[Hotel] | type[Attraction]) -> None:
    @api.route(
        "GET",
        f"{PREFIX}/destinations/{{destination_id}}/{kind}",
        summary=f"The {kind} at a destination",
        tag=tag,
        response=Page[schemas.PlaceOut],
        query=PageQuery,
        roles=ROBOT_OR_ADMIN,
        text_params=("destination_id",),
    )
    async def places(call: Call[None, PageQuery]) -> BaseModel:
        where = col(table.destination_id) == call.text["destination_id"]
        async with context(call.app).sessions() as session:
            rows, total = await fetch_page(session, table, call.query, where)
        items = [schemas.PlaceOut.model_validate(row, from_attributes=True) for row in rows]
        return Page[schemas.PlaceOut].of(items, total, call.query)
