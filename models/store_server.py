"""Tables of the seed's Store Server database (stores, items, purchases, tasks).

Names, types and lengths follow the seed's diagram (shared/seed/server-architecture.ru.md,
"Store Server / База данных"); nullability choices are in docs/decisions.md.
`user_id` names a row of the Base database, so it has no foreign key (as in the seed).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, Integer, false
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from models.columns import created_at, uuid_pk, uuid_ref, varchar


class StoreType(enum.StrEnum):
    """The seed's `store_type_enum`."""

    SHOP = "SHOP"
    RESTAURANT = "RESTAURANT"


class StoreServerTable(SQLModel, registry=registry()):
    """Parent of every Store Server table; its `metadata` is that database's schema."""


STORE_METADATA = StoreServerTable.metadata


class Store(StoreServerTable, table=True):
    __tablename__ = "stores"

    id: uuid.UUID = uuid_pk()
    name: str = varchar(100)
    description: str = varchar(255)
    logo_url: str = varchar(255)
    store_type: StoreType = Field(
        sa_type=Enum(StoreType, name="store_type_enum", values_callable=lambda e: [m.value for m in e]),
    )
    created_at: dt.datetime = created_at()


class StoreItem(StoreServerTable, table=True):
    __tablename__ = "store_items"

    id: uuid.UUID = uuid_pk()
    store_id: uuid.UUID = uuid_ref("stores.id")
    name: str = varchar(100)
    description: str = varchar(255)
    logo_url: str | None = varchar(255, nullable=True, default=None)
    # NULL: the store does not count this item's stock (the seed's clients create items without one).
    balance: int | None = Field(default=None, sa_type=Integer, nullable=True)
    price_penny: int = Field(sa_type=Integer)
    category: str | None = varchar(100, nullable=True, default=None)
    created_at: dt.datetime = created_at()


class Purchase(StoreServerTable, table=True):
    __tablename__ = "purchases"

    id: uuid.UUID = uuid_pk()
    store_id: uuid.UUID = uuid_ref("stores.id")
    user_id: uuid.UUID = uuid_ref()
    created_at: dt.datetime = created_at()


class PurchaseItem(StoreServerTable, table=True):
    __tablename__ = "purchase_items"

    id: uuid.UUID = uuid_pk()
    purchase_id: uuid.UUID = uuid_ref("purchases.id")
    store_item_id: uuid.UUID = uuid_ref("store_items.id")
    count: int = Field(sa_type=Integer)


class Task(StoreServerTable, table=True):
    __tablename__ = "tasks"

    id: uuid.UUID = uuid_pk()
    store_id: uuid.UUID = uuid_ref("stores.id")
    user_id: uuid.UUID = uuid_ref()
    purchase_id: uuid.UUID = uuid_ref("purchases.id")
    is_ready: bool = Field(default=False, sa_type=Boolean, sa_column_kwargs={"server_default": false()})
    additional_data: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)
    created_at: dt.datetime = created_at()
