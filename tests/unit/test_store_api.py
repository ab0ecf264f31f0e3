"""The Store API bodies have exactly the seed's JSON shapes, and refuse what the seed's service refused."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

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
    ValidationErrorBody,
)
from models.store_server import StoreType

# The seed's examples, key for key ("Store Server / Endpoints").
SEED_STORE = {
    "id": "string",
    "name": "string",
    "description": "string",
    "logo_url": "string",
    "store_type": "SHOP",
}
SEED_ITEM = {"id": "string", "name": "string", "description": "string", "price_penny": 1000}
SEED_PURCHASE_REQUEST = {
    "user_id": "string",
    "items": [{"item_id": "string", "count": 1}],
    "is_default_ready": True,
}
SEED_PURCHASE_RESPONSE = {
    "id": "string",
    "store_id": "string",
    "user_id": "string",
    "items": [{"item_id": "string", "count": 1}],
    "date": "2024-01-01T12:00:00Z",
}
SEED_PAGE_KEYS = ["items", "total", "page", "size"]
ITEM_EXTRAS = ["logo_url", "balance", "category"]  # the table's columns, optional in requests


def keys(model: BaseModel) -> list[str]:
    return list(json.loads(model.model_dump_json()))


def test_store_has_the_seed_keys_and_json_types() -> None:
    store = StoreOut(
        id=uuid.uuid4(), name="Buffet", description="Snacks", logo_url="/b.png", store_type=StoreType.SHOP
    )
    body = json.loads(store.model_dump_json())
    assert list(body) == ["name", "description", "logo_url", "store_type", "id"]
    assert sorted(body) == sorted(SEED_STORE)
    assert all(isinstance(v, str) for v in body.values())
    assert StoreCreate.model_validate({k: v for k, v in SEED_STORE.items() if k != "id"}).store_type == "SHOP"


def test_item_has_the_seed_keys_plus_the_tables_optional_columns() -> None:
    item = ItemOut(id=uuid.uuid4(), name="Tea", description="Black", price_penny=15000)
    assert sorted(keys(item)) == sorted([*SEED_ITEM, *ITEM_EXTRAS])
    assert json.loads(item.model_dump_json())["price_penny"] == 15000
    # The seed's own request bodies are accepted as they are.
    assert ItemCreate.model_validate({k: v for k, v in SEED_ITEM.items() if k != "id"}).balance is None
    assert ItemUpdate.model_validate({**SEED_ITEM, "id": str(uuid.uuid4())}).price_penny == 1000


def test_purchase_request_and_response_have_the_seed_shape() -> None:
    user, item = uuid.uuid4(), uuid.uuid4()
    request = PurchaseCreate.model_validate(
        {**SEED_PURCHASE_REQUEST, "user_id": str(user), "items": [{"item_id": str(item), "count": 1}]}
    )
    assert request.is_default_ready is True
    response = PurchaseOut(
        id=uuid.uuid4(),
        store_id=uuid.uuid4(),
        user_id=user,
        items=request.items,
        date=dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
    )
    body = json.loads(response.model_dump_json())
    assert list(body) == list(SEED_PURCHASE_RESPONSE)
    assert list(body["items"][0]) == ["item_id", "count"]
    assert dt.datetime.fromisoformat(body["date"]) == dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)


def test_page_has_the_seed_shape() -> None:
    page = Page[StoreOut](items=[], total=100, page=1, size=50)
    assert keys(page) == SEED_PAGE_KEYS


def test_delete_answer_is_status_ok() -> None:
    assert json.loads(StatusOK().model_dump_json()) == {"status": "OK"}


@pytest.mark.parametrize(
    ("query", "page", "size"),
    [({}, 1, 50), ({"page": "3", "size": "100"}, 3, 100), ({"size": "1"}, 1, 1)],
)
def test_page_query_defaults_and_bounds(query: dict[str, str], page: int, size: int) -> None:
    parsed = PageQuery.model_validate(query)
    assert (parsed.page, parsed.size, parsed.offset) == (page, size, (page - 1) * size)


@pytest.mark.parametrize(
    "query", [{"page": "0"}, {"size": "0"}, {"size": "101"}, {"page": "x"}, {"size": ""}]
)
def test_page_query_out_of_bounds_is_refused(query: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        PageQuery.model_validate(query)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Tea", "description": "d", "price_penny": "1000"}, "price_penny"),
        ({"name": "Tea", "description": "d", "price_penny": True}, "price_penny"),
        ({"name": "Tea", "description": "d", "price_penny": -1}, "price_penny"),
        ({"name": "Tea", "description": "d", "price_penny": 1.5}, "price_penny"),
        ({"name": "", "description": "d", "price_penny": 1}, "name"),
        ({"name": "x" * 101, "description": "d", "price_penny": 1}, "name"),
        ({"name": "Tea", "price_penny": 1}, "description"),
        ({"name": "Tea", "description": "d", "price_penny": 1, "balance": "5"}, "balance"),
    ],
)
def test_bad_item_bodies_are_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ItemCreate.model_validate_json(json.dumps(body))
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_whole_number_floats_are_integers_as_json_schema_says() -> None:
    assert (
        ItemCreate.model_validate_json('{"name":"Tea","description":"d","price_penny":356.0}').price_penny
        == 356
    )


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"user_id": "nope", "items": [{"item_id": str(uuid.uuid4()), "count": 1}]}, ("user_id",)),
        ({"user_id": str(uuid.uuid4()), "items": []}, ("items",)),
        (
            {"user_id": str(uuid.uuid4()), "items": [{"item_id": str(uuid.uuid4()), "count": 0}]},
            ("items", 0, "count"),
        ),
        ({"user_id": str(uuid.uuid4()), "items": [{"count": 1}]}, ("items", 0, "item_id")),
        (
            {
                "user_id": str(uuid.uuid4()),
                "items": [{"item_id": str(uuid.uuid4()), "count": 1}],
                "is_default_ready": 1,
            },
            ("is_default_ready",),
        ),
    ],
)
def test_bad_purchase_bodies_are_refused_naming_the_field(
    body: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        PurchaseCreate.model_validate_json(json.dumps(body))
    assert [e["loc"] for e in caught.value.errors()] == [loc]


def test_unknown_request_keys_are_ignored_as_the_seed_did() -> None:
    line = PurchaseLine.model_validate({"item_id": str(uuid.uuid4()), "count": 2, "note": "no sugar"})
    assert "note" not in line.model_dump()


def test_validation_error_body_is_fastapis_shape() -> None:
    body = ValidationErrorBody.model_validate(
        {
            "detail": [
                {"loc": ["body", "items", 0, "count"], "msg": "Input should be greater than 0", "type": "x"}
            ]
        }
    )
    assert json.loads(body.model_dump_json())["detail"][0]["loc"] == ["body", "items", 0, "count"]
