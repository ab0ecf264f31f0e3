"""The seed's Store API under /store_api: stores (admin), items and purchases (a store's own token),
and the task queue a store terminal works from."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import Row
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.db.tables import Role
from cloud_sync.web.context import CloudContext, context
from cloud_sync.web.resources import Resource, add_admin_routes, commit_or_409, fetch_page
from cloud_sync.web.routing import Api, Call, HTTPError, NoInput
from models.store_api import (
    ItemCreate,
    ItemOut,
    ItemUpdate,
    Page,
    PageQuery,
    PurchaseCreate,
    PurchaseOut,
    StatusOK,
    StoreCreate,
    StoreOut,
)
from models.store_server import STORE_METADATA, Purchase, PurchaseItem, Store, StoreItem, Task

PREFIX = "/store_api"
_PURCHASES = STORE_METADATA.tables["purchases"]
_PURCHASE_ITEMS = STORE_METADATA.tables["purchase_items"]
_TASKS = STORE_METADATA.tables["tasks"]
ADMIN = (Role.ADMIN,)
STORE = (Role.STORE,)


class TaskOut(BaseModel):
    """A task for the store's staff: prepare (or hand over) a purchase."""

    id: uuid.UUID
    purchase_id: uuid.UUID
    user_id: uuid.UUID
    is_ready: bool
    additional_data: dict[str, Any] | None
    created_at: dt.datetime


class TaskQuery(PageQuery):
    is_ready: bool | None = Field(default=None, description="only tasks in this state")


async def _store_row(body: StoreCreate, _ctx: CloudContext, _session: AsyncSession) -> Store:
    return Store.model_validate(body.model_dump())


async def _store_keeps_history(session: AsyncSession, store: Store) -> None:
    """A store that has sold keeps its history (409); one that has not goes with its items."""
    if (await session.exec(select(Purchase.id).where(Purchase.store_id == store.id).limit(1))).first():
        raise HTTPError(409, f"store {store.id} has purchases: its history must stay")
    for item in (await session.exec(select(StoreItem).where(StoreItem.store_id == store.id))).all():
        await session.delete(item)


def _forget_store(ctx: CloudContext, store_id: uuid.UUID) -> None:
    ctx.tokens.forget()
    ctx.item_pages.forget(store_id)


STORES: Resource[Store, StoreOut] = Resource(
    "store",
    "stores",
    "store",
    Store,
    StoreCreate,
    StoreOut,
    _store_row,
    before_delete=_store_keeps_history,
    after_delete=_forget_store,
    param="store_id",
    summaries={"create": "Create Store", "list": "Get Stores", "get": "Get Store", "delete": "Delete Store"},
)


def _item_out(row: StoreItem | Row[Any]) -> ItemOut:
    return ItemOut.model_validate(row, from_attributes=True)


def _task_out(row: Task | Row[Any]) -> TaskOut:
    return TaskOut.model_validate(row, from_attributes=True)


Owned = TypeVar("Owned", StoreItem, Task)
_WHAT: dict[type[StoreItem | Task], str] = {StoreItem: "item", Task: "task"}


async def _owned(session: AsyncSession, table: type[Owned], row_id: uuid.UUID, store_id: uuid.UUID) -> Owned:
    # Another store's row is "not found": a store token never learns what other stores have.
    row = await session.get(table, row_id)
    if row is None or row.store_id != store_id:
        raise HTTPError(404, f"{_WHAT[table]} {row_id} not found")
    return row


def register(api: Api) -> None:
    tag = "Store API"

    add_admin_routes(api, f"{PREFIX}/admin", tag, STORES, ADMIN)

    @api.route(
        "GET",
        f"{PREFIX}/store/items",
        summary="Get Items",
        tag=tag,
        response=Page[ItemOut],
        query=PageQuery,
        roles=STORE,
    )
    async def list_items(call: Call[None, PageQuery]) -> BaseModel | web.StreamResponse:
        ctx, store_id = context(call.app), call.store_id()
        key = (call.query.page, call.query.size)
        body = ctx.item_pages.get(store_id, key)
        if body is None:
            async with ctx.sessions() as session:
                rows, total = await fetch_page(
                    session, StoreItem, call.query, col(StoreItem.store_id) == store_id
                )
            page = Page[ItemOut].of([_item_out(r) for r in rows], total, call.query)
            body = page.model_dump_json().encode()
            ctx.item_pages.put(store_id, key, body)
        return web.Response(body=body, content_type="application/json")

    @api.route(
        "GET", f"{PREFIX}/store/item/{{item_id}}", summary="Get Item", tag=tag, response=ItemOut, roles=STORE
    )
    async def get_item(call: Call[None, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            return _item_out(await _owned(session, StoreItem, call.path["item_id"], call.store_id()))

    @api.route(
        "POST",
        f"{PREFIX}/store/item",
        summary="Add Item",
        tag=tag,
        response=ItemOut,
        body=ItemCreate,
        roles=STORE,
    )
    async def add_item(call: Call[ItemCreate, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            item = StoreItem.model_validate({**call.body.model_dump(), "store_id": call.store_id()})
            session.add(item)
            await commit_or_409(session, "this item")
        context(call.app).item_pages.forget(item.store_id)
        return _item_out(item)

    @api.route(
        "PUT",
        f"{PREFIX}/store/item",
        summary="Update Item",
        tag=tag,
        response=ItemOut,
        body=ItemUpdate,
        roles=STORE,
        errors=(404,),
    )
    async def update_item(call: Call[ItemUpdate, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            item = await _owned(session, StoreItem, call.body.id, call.store_id())
            for name, value in call.body.changes().items():
                setattr(item, name, value)
            session.add(item)
            await commit_or_409(session, f"item {item.id}")
        context(call.app).item_pages.forget(item.store_id)
        return _item_out(item)

    @api.route(
        "DELETE",
        f"{PREFIX}/store/item/{{item_id}}",
        summary="Remove Item",
        tag=tag,
        response=StatusOK,
        roles=STORE,
        errors=(409,),
    )
    async def delete_item(call: Call[None, NoInput]) -> BaseModel:
        item_id = call.path["item_id"]
        async with context(call.app).sessions() as session:
            item = await _owned(session, StoreItem, item_id, call.store_id())
            if (
                await session.exec(
                    select(PurchaseItem.id).where(PurchaseItem.store_item_id == item_id).limit(1)
                )
            ).first():
                raise HTTPError(409, f"item {item_id} has been sold: purchases refer to it")
            await session.delete(item)
            await commit_or_409(session, f"item {item_id}")
        context(call.app).item_pages.forget(call.store_id())
        return StatusOK()

    @api.route(
        "POST",
        f"{PREFIX}/store/purchase",
        summary="Make Purchase",
        tag=tag,
        response=PurchaseOut,
        body=PurchaseCreate,
        roles=STORE,
        errors=(404, 409),
    )
    async def make_purchase(call: Call[PurchaseCreate, NoInput]) -> BaseModel:
        ctx = context(call.app)
        bought = await ctx.purchases.buy(call.store_id(), call.body)
        ctx.item_pages.forget(bought.store_id)
        return bought

    @api.route(
        "GET",
        f"{PREFIX}/store/tasks",
        summary="Get Tasks",
        tag=tag,
        response=Page[TaskOut],
        query=TaskQuery,
        roles=STORE,
    )
    async def list_tasks(call: Call[None, TaskQuery]) -> BaseModel:
        where = [col(Task.store_id) == call.store_id()]
        if call.query.is_ready is not None:
            where.append(col(Task.is_ready) == call.query.is_ready)
        async with context(call.app).sessions() as session:
            rows, total = await fetch_page(session, Task, call.query, *where)
        return Page[TaskOut].of([_task_out(r) for r in rows], total, call.query)

    @api.route(
        "PUT",
        f"{PREFIX}/store/task/{{task_id}}/ready",
        summary="Mark Task Ready",
        tag=tag,
        response=TaskOut,
        roles=STORE,
    )
    async def task_ready(call: Call[None, NoInput]) -> BaseModel:
        task_id = call.path["task_id"]
        async with context(call.app).sessions() as session:
            task = await _owned(session, Task, task_id, call.store_id())
            task.is_ready = True
            session.add(task)
            await commit_or_409(session, f"task {task_id}")
            return _task_out(task)
