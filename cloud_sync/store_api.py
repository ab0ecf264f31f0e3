"""The seed's Store API under /store_api: stores (admin), items and purchases (a store's own token),
and the task queue a store terminal works from."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.context import context
from cloud_sync.resources import commit_or_409, fetch_page, get_or_404
from cloud_sync.routing import Api, Call, HTTPError, NoInput
from cloud_sync.tables import Role
from models.store_api import (
    ItemCreate,
    ItemOut,
    ItemUpdate,
    Page,
    PageQuery,
    PurchaseCreate,
    PurchaseLine,
    PurchaseOut,
    StatusOK,
    StoreCreate,
    StoreOut,
)
from models.store_server import Purchase, PurchaseItem, Store, StoreItem, Task

PREFIX = "/store_api"
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


def _store_out(row: Store) -> StoreOut:
    return StoreOut.model_validate(row, from_attributes=True)


def _item_out(row: StoreItem) -> ItemOut:
    return ItemOut.model_validate(row, from_attributes=True)


def _task_out(row: Task) -> TaskOut:
    return TaskOut.model_validate(row, from_attributes=True)


async def _store_item(session: AsyncSession, store_id: uuid.UUID, item_id: uuid.UUID) -> StoreItem:
    # Another store's item is "not found": a store token never learns what other stores sell.
    item = await session.get(StoreItem, item_id)
    if item is None or item.store_id != store_id:
        raise HTTPError(404, f"item {item_id} not found")
    return item


def register(api: Api) -> None:
    tag = "Store API"

    @api.route(
        "POST",
        f"{PREFIX}/admin/store",
        summary="Create Store",
        tag=tag,
        response=StoreOut,
        body=StoreCreate,
        roles=ADMIN,
    )
    async def create_store(call: Call[StoreCreate, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            store = Store.model_validate(call.body.model_dump())
            session.add(store)
            await commit_or_409(session, "this store")
            return _store_out(store)

    @api.route(
        "GET",
        f"{PREFIX}/admin/stores",
        summary="Get Stores",
        tag=tag,
        response=Page[StoreOut],
        query=PageQuery,
        roles=ADMIN,
    )
    async def list_stores(call: Call[None, PageQuery]) -> BaseModel:
        async with context(call.app).sessions() as session:
            rows, total = await fetch_page(session, Store, call.query)
        return Page[StoreOut](
            items=[_store_out(r) for r in rows], total=total, page=call.query.page, size=call.query.size
        )

    @api.route(
        "GET",
        f"{PREFIX}/admin/store/{{store_id}}",
        summary="Get Store",
        tag=tag,
        response=StoreOut,
        roles=ADMIN,
    )
    async def get_store(call: Call[None, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            return _store_out(await get_or_404(session, Store, call.path["store_id"], "store"))

    @api.route(
        "DELETE",
        f"{PREFIX}/admin/store/{{store_id}}",
        summary="Delete Store",
        tag=tag,
        response=StatusOK,
        roles=ADMIN,
        errors=(409,),
    )
    async def delete_store(call: Call[None, NoInput]) -> BaseModel:
        store_id = call.path["store_id"]
        ctx = context(call.app)
        async with ctx.sessions() as session:
            store = await get_or_404(session, Store, store_id, "store")
            if (
                await session.exec(select(Purchase.id).where(Purchase.store_id == store_id).limit(1))
            ).first():
                raise HTTPError(409, f"store {store_id} has purchases: its history must stay")
            for item in (await session.exec(select(StoreItem).where(StoreItem.store_id == store_id))).all():
                await session.delete(item)
            await session.delete(store)
            await commit_or_409(session, f"store {store_id}")
        ctx.tokens.forget()
        return StatusOK()

    @api.route(
        "GET",
        f"{PREFIX}/store/items",
        summary="Get Items",
        tag=tag,
        response=Page[ItemOut],
        query=PageQuery,
        roles=STORE,
    )
    async def list_items(call: Call[None, PageQuery]) -> BaseModel:
        async with context(call.app).sessions() as session:
            rows, total = await fetch_page(
                session, StoreItem, call.query, col(StoreItem.store_id) == call.store_id()
            )
        return Page[ItemOut](
            items=[_item_out(r) for r in rows], total=total, page=call.query.page, size=call.query.size
        )

    @api.route(
        "GET", f"{PREFIX}/store/item/{{item_id}}", summary="Get Item", tag=tag, response=ItemOut, roles=STORE
    )
    async def get_item(call: Call[None, NoInput]) -> BaseModel:
        async with context(call.app).sessions() as session:
            return _item_out(await _store_item(session, call.store_id(), call.path["item_id"]))

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
            item = await _store_item(session, call.store_id(), call.body.id)
            for name, value in call.body.model_dump(exclude={"id"}).items():
                setattr(item, name, value)
            session.add(item)
            await commit_or_409(session, f"item {item.id}")
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
            item = await _store_item(session, call.store_id(), item_id)
            if (
                await session.exec(
                    select(PurchaseItem.id).where(PurchaseItem.store_item_id == item_id).limit(1)
                )
            ).first():
                raise HTTPError(409, f"item {item_id} has been sold: purchases refer to it")
            await session.delete(item)
            await commit_or_409(session, f"item {item_id}")
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
        async with context(call.app).sessions() as session:
            return await purchase(session, call.store_id(), call.body)

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
        return Page[TaskOut](
            items=[_task_out(r) for r in rows], total=total, page=call.query.page, size=call.query.size
        )

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
            task = await session.get(Task, task_id)
            if task is None or task.store_id != call.store_id():
                raise HTTPError(404, f"task {task_id} not found")
            task.is_ready = True
            session.add(task)
            await commit_or_409(session, f"task {task_id}")
            return _task_out(task)


async def purchase(session: AsyncSession, store_id: uuid.UUID, body: PurchaseCreate) -> PurchaseOut:
    """Sell the lines of a purchase in one transaction: every balance is decremented, or none is.

    Each decrement is a conditional UPDATE (`balance >= count`), so two terminals selling the last item at
    once cannot both succeed, on SQLite or PostgreSQL alike.
    """
    wanted = Counter[uuid.UUID]()
    for line in body.items:
        wanted[line.item_id] += line.count
    for item_id, count in sorted(wanted.items()):
        sold = await session.exec(
            update(StoreItem)
            .where(col(StoreItem.id) == item_id, col(StoreItem.store_id) == store_id)
            .where((col(StoreItem.balance).is_(None)) | (col(StoreItem.balance) >= count))
            .values(balance=StoreItem.balance - count)  # type: ignore[operator]
        )
        if sold.rowcount == 1:
            continue
        await session.rollback()
        item = await session.get(StoreItem, item_id)
        if item is None or item.store_id != store_id:
            raise HTTPError(404, f"item {item_id} not found")
        raise HTTPError(409, f"item {item_id} ({item.name}): {count} wanted, {item.balance} in stock")
    record = Purchase(store_id=store_id, user_id=body.user_id)
    session.add(record)
    await session.flush()
    for line in body.items:
        session.add(PurchaseItem(purchase_id=record.id, store_item_id=line.item_id, count=line.count))
    session.add(
        Task(store_id=store_id, user_id=body.user_id, purchase_id=record.id, is_ready=body.is_default_ready)
    )
    await session.commit()
    return PurchaseOut(
        id=record.id,
        store_id=store_id,
        user_id=body.user_id,
        items=[PurchaseLine(item_id=line.item_id, count=line.count) for line in body.items],
        date=record.created_at,
    )
