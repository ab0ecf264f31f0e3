"""Request and response bodies of the seed's Store API ("Store Server / Endpoints").

The JSON shapes are a contract with existing store terminals: field names and nesting are exactly the
seed's. Items additionally carry the table's optional `logo_url`, `balance` and `category`; a client that
knows only the seed's keys ignores them. Requests ignore unknown keys, as the seed's FastAPI service did.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic_core import PydanticCustomError

from models.store_server import StoreType

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 100
# The seed's integer columns are PostgreSQL `integer`: numbers beyond it are refused at the door.
INT32_MAX = 2_147_483_647
# PostgreSQL text cannot hold NUL; refused by the schema itself, so clients know before they send.
NO_NUL = r"^[^\x00]*$"


def reject_non_integers(value: Any) -> Any:
    # pydantic's lax mode turns "5" and false into ints; JSON Schema calls neither an integer.
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


JsonInt = Annotated[int, BeforeValidator(reject_non_integers)]
"""An integer in a JSON body: 5 and 5.0 pass, "5" and true do not. Put bounds before the validator
(`Annotated[int, Field(ge=0), BeforeValidator(...)]`) inside unions, or the JSON schema shows `ge`."""

Amount = Annotated[int, Field(ge=0, le=INT32_MAX), BeforeValidator(reject_non_integers)]
"""A price or a stock: 0 to the largest `integer`."""

Count = Annotated[int, Field(ge=1, le=INT32_MAX), BeforeValidator(reject_non_integers)]
"""How many of an item: at least one."""

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list: `{"items": [...], "total": N, "page": P, "size": S}`."""

    items: list[T]
    total: int = Field(ge=0)
    page: int = Field(ge=1)
    size: int = Field(ge=1, le=PAGE_SIZE_MAX)

    @classmethod
    def of(cls, items: list[T], total: int, query: PageQuery) -> Self:
        """The page `query` asked for, holding `items` of `total`."""
        return cls(items=items, total=total, page=query.page, size=query.size)


class PageQuery(BaseModel):
    """The `page` and `size` query parameters of every list endpoint (values arrive as strings)."""

    model_config = ConfigDict(extra="ignore")

    page: int = Field(default=1, ge=1, le=INT32_MAX)
    size: int = Field(default=PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


class StatusOK(BaseModel):
    """`{"status": "OK"}`, the answer to a delete."""

    status: Literal["OK"] = "OK"


class StoreCreate(BaseModel):
    """Body of `POST /admin/store`."""

    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    description: str = Field(max_length=255, pattern=NO_NUL)
    logo_url: str = Field(max_length=255, pattern=NO_NUL)
    store_type: StoreType


class StoreOut(StoreCreate):
    """A store as every store endpoint returns it."""

    id: uuid.UUID


class ItemFields(BaseModel):
    """What a store says about an item; the seed's three fields first, the table's optional ones after."""

    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    description: str = Field(max_length=255, pattern=NO_NUL)
    price_penny: Amount
    logo_url: Annotated[str, Field(max_length=255, pattern=NO_NUL)] | None = None
    balance: Amount | None = None
    category: Annotated[str, Field(max_length=100, pattern=NO_NUL)] | None = None


class ItemCreate(ItemFields):
    """Body of `POST /store/item`."""


class ItemUpdate(ItemFields):
    """Body of `PUT /store/item`. The seed's keys are required; `logo_url`, `balance` and `category` left out
    keep their stored values (the seed's terminals never send them), and an explicit `null` clears one
    (`balance: null`: stock no longer counted)."""

    id: uuid.UUID

    def changes(self) -> dict[str, Any]:
        """The columns this update sets: every field the request carried, `id` aside."""
        return self.model_dump(exclude={"id"}, exclude_unset=True)


class ItemOut(ItemFields):
    """An item as every item endpoint returns it."""

    id: uuid.UUID


class PurchaseLine(BaseModel):
    """One line of a purchase: `{"item_id": ..., "count": N}`."""

    item_id: uuid.UUID
    count: Count


class PurchaseCreate(BaseModel):
    """Body of `POST /store/purchase`."""

    user_id: uuid.UUID
    items: list[PurchaseLine] = Field(min_length=1)
    is_default_ready: StrictBool = False


class PurchaseOut(BaseModel):
    """The answer to `POST /store/purchase`."""

    id: uuid.UUID
    store_id: uuid.UUID
    user_id: uuid.UUID
    items: list[PurchaseLine]
    date: dt.datetime


class ValidationErrorItem(BaseModel):
    """One entry of a 422 body, as FastAPI (the seed's framework) writes it."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """A 422 body: `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`."""

    detail: list[ValidationErrorItem]
