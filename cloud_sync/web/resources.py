"""Paging, and the create / get / page / delete routes every admin resource shares."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Row, Select, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel
from sqlmodel import select as sqlmodel_select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.tables import Role
from cloud_sync.web.context import CloudContext, context
from cloud_sync.web.routing import Api, Call, HTTPError, NoInput
from models.store_api import Page, PageQuery, StatusOK

T = TypeVar("T", bound=SQLModel)
OutT = TypeVar("OutT", bound=BaseModel)


async def fetch_page(
    session: AsyncSession, table: type[T], query: PageQuery, *where: ColumnElement[bool]
) -> tuple[list[Row[Any]], int]:
    """One page of a table's rows (oldest first; id breaks ties, so pages never overlap) and the total.

    One round trip: the total rides along as a window count. Rows are Core rows, not ORM objects; a
    response model reads them with `from_attributes`.
    """
    sa_table = sa_inspect(table).local_table
    columns = sa_table.c
    order = [columns.created_at] if "created_at" in columns else []
    order.append(columns.id)
    statement: Select[Any] = (
        select(*columns, func.count().over().label("page_total"))
        .where(*where)
        .order_by(*order)
        .offset(query.offset)
        .limit(query.size)
    )
    # sqlmodel's stubs know only its own Select; at run time exec takes any SQLAlchemy statement.
    rows = list((await session.exec(statement)).all())  # type: ignore[call-overload]
    if rows:
        return rows, int(rows[0].page_total)
    # Past the last page the window has nothing to count over.
    total = (await session.exec(sqlmodel_select(func.count()).select_from(sa_table).where(*where))).one()
    return rows, int(total)


async def get_or_404(session: AsyncSession, table: type[T], row_id: uuid.UUID, what: str) -> T:
    row = await session.get(table, row_id)
    if row is None:
        raise HTTPError(404, f"{what} {row_id} not found")
    return row


async def commit_or_409(session: AsyncSession, what: str) -> None:
    """Commit; a foreign key or uniqueness the change breaks becomes a 409 that says so."""
    try:
        await session.commit()
    except IntegrityError as err:
        await session.rollback()
        message = str(err.orig).lower()
        if "unique" in message or "duplicate" in message:
            raise HTTPError(409, f"{what} already exists") from err
        if "foreign key" in message:
            raise HTTPError(
                409, f"{what} is referenced by other records, or refers to a missing one"
            ) from err
        raise HTTPError(409, f"{what} conflicts with stored data") from err


Verb = Literal["create", "list", "get", "delete"]


@dataclass(frozen=True)
class Resource(Generic[T, OutT]):
    """An admin resource: POST {prefix}/{name}, GET {prefix}/{plural}, GET|DELETE {prefix}/{name}/{id}.

    The Base API's resources and tickets, and the Store API's stores, are all this shape; what differs
    is said by the hooks (each optional) rather than by routes of their own."""

    name: str
    plural: str
    title: str
    table: type[T]
    create: type[BaseModel]
    out: type[OutT]
    to_row: Callable[[Any, CloudContext, AsyncSession], Awaitable[T]]
    # Refuses a body whose references are missing (a 404 naming them); runs before to_row.
    checks: Callable[[Any, AsyncSession], Awaitable[None]] | None = None
    # The response when it needs more than the row (a ticket's token and revocation).
    present: Callable[[AsyncSession, Any], Awaitable[OutT]] | None = None
    # Refuses a delete (a 409 naming why) or deletes what belongs to the row with it.
    before_delete: Callable[[AsyncSession, T], Awaitable[None]] | None = None
    # What must forget the row once it is gone (caches).
    after_delete: Callable[[CloudContext, uuid.UUID], None] | None = None
    # The path parameter's name and the routes' summaries, where a contract (the seed's) fixes them.
    param: str = "id"
    summaries: Mapping[Verb, str] = field(default_factory=dict)

    async def view(self, session: AsyncSession, row: T | Row[Any]) -> OutT:
        if self.present is not None:
            return await self.present(session, row)
        return self.out.model_validate(row, from_attributes=True)

    def summary(self, verb: Verb) -> str:
        generic = {
            "create": f"Create a {self.title}",
            "list": f"List {self.plural}",
            "get": f"Get a {self.title}",
            "delete": f"Delete a {self.title}",
        }
        return self.summaries.get(verb, generic[verb])


def add_admin_routes(
    api: Api, prefix: str, tag: str, resource: Resource[Any, Any], roles: Collection[Role]
) -> None:
    """Register a resource's four routes."""
    r = resource
    page_model: type[Page[Any]] = Page.__class_getitem__(r.out)  # type: ignore[assignment]
    one = f"{prefix}/{r.name}"
    by_id = f"{one}/{{{r.param}}}"

    @api.route(
        "POST",
        one,
        summary=r.summary("create"),
        tag=tag,
        response=r.out,
        body=r.create,
        roles=roles,
        errors=(404, 409) if r.checks is not None else (409,),
    )
    async def create(call: Call[Any, NoInput]) -> BaseModel:
        ctx = context(call.app)
        async with ctx.sessions() as session:
            if r.checks is not None:
                await r.checks(call.body, session)
            row = await r.to_row(call.body, ctx, session)
            session.add(row)
            await commit_or_409(session, f"this {r.title}")
            await session.refresh(row)  # read back as stored: times in UTC, defaults filled
            out: BaseModel = await r.view(session, row)
            return out

    @api.route(
        "GET",
        f"{prefix}/{r.plural}",
        summary=r.summary("list"),
        tag=tag,
        response=page_model,
        query=PageQuery,
        roles=roles,
    )
    async def listing(call: Call[None, PageQuery]) -> BaseModel:
        async with context(call.app).sessions() as session:
            rows, total = await fetch_page(session, r.table, call.query)
            items = [await r.view(session, row) for row in rows]
        return page_model.of(items, total, call.query)

    @api.route("GET", by_id, summary=r.summary("get"), tag=tag, response=r.out, roles=roles)
    async def get(call: Call[None, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            row = await get_or_404(session, r.table, call.path[r.param], r.title)
            found: BaseModel = await r.view(session, row)
            return found

    @api.route(
        "DELETE",
        by_id,
        summary=r.summary("delete"),
        tag=tag,
        response=StatusOK,
        roles=roles,
        errors=(409,),
    )
    async def delete(call: Call[None, NoInput]) -> BaseModel:
        ctx, row_id = context(call.app), call.path[r.param]
        async with ctx.sessions() as session:
            row = await get_or_404(session, r.table, row_id, r.title)
            if r.before_delete is not None:
                await r.before_delete(session, row)
            await session.delete(row)
            await commit_or_409(session, f"{r.title} {row_id}")
        if r.after_delete is not None:
            r.after_delete(ctx, row_id)
        return StatusOK()
