"""`plan_group`: how a group of purchases is decided against the stock it read, one purchase after another."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.desks.purchases import Order, Stock, plan_group
from cloud_sync.web.routing import DOMAIN_STATUS
from models.store_api import PurchaseCreate, PurchaseLine

STORE = uuid.UUID(int=1)
OTHER_STORE = uuid.UUID(int=2)
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
TEA, CAKE, SOUP, FOREIGN = (uuid.UUID(int=n) for n in (11, 12, 13, 14))


def stock() -> dict[uuid.UUID, Stock]:
    return {
        TEA: Stock(STORE, "Tea", 3),
        CAKE: Stock(STORE, "Cake", None),  # not counted
        SOUP: Stock(STORE, "Soup", 0),
        FOREIGN: Stock(OTHER_STORE, "Their tea", 10),
    }


def order(*lines: tuple[uuid.UUID, int], store: uuid.UUID = STORE) -> Order:
    # The plan never touches the future; a loop is needed only to create one.
    loop = asyncio.new_event_loop()
    try:
        answer = loop.create_future()
    finally:
        loop.close()
    body = PurchaseCreate(
        user_id=uuid.uuid4(),
        items=[PurchaseLine(item_id=i, count=c) for i, c in lines],
        is_default_ready=True,
    )
    return Order(store, body, answer)


def test_purchases_are_decided_in_order_against_what_is_left() -> None:
    first, second, third = order((TEA, 2), (CAKE, 5)), order((TEA, 2)), order((TEA, 1))
    plan = plan_group([first, second, third], stock(), NOW)
    assert [o for o, _ in plan.sold] == [first, third]
    [(refused, error)] = plan.refused
    assert refused is second
    assert (DOMAIN_STATUS[type(error)], str(error)) == (409, f"item {TEA} (Tea): 2 wanted, 1 in stock")
    # Only counted items get a new balance; the uncounted cake is sold without one.
    assert plan.balances == {TEA: 0}


def test_a_sold_purchase_keeps_its_lines_store_user_and_time() -> None:
    wanted = order((CAKE, 1), (TEA, 1))
    [(sold, bought)] = plan_group([wanted], stock(), NOW).sold
    assert sold is wanted
    assert (bought.store_id, bought.user_id, bought.items, bought.date) == (
        STORE,
        wanted.body.user_id,
        wanted.body.items,
        NOW,
    )
    assert bought.id.version == 7  # time-ordered: new rows land at the end of the indexes


def test_lines_of_one_item_count_together() -> None:
    plan = plan_group([order((TEA, 2), (TEA, 2))], stock(), NOW)
    assert [str(e) for _, e in plan.refused] == [f"item {TEA} (Tea): 4 wanted, 3 in stock"]
    assert plan.balances == {}


def test_unknown_and_foreign_items_are_404_before_any_stock_check() -> None:
    missing = uuid.UUID(int=99)
    plan = plan_group([order((SOUP, 1), (missing, 1)), order((FOREIGN, 1))], stock(), NOW)
    assert [(DOMAIN_STATUS[type(e)], str(e)) for _, e in plan.refused] == [
        (404, f"item {missing} not found"),
        (404, f"item {FOREIGN} not found"),
    ]
    # The other store sells its own item.
    assert len(plan_group([order((FOREIGN, 1), store=OTHER_STORE)], stock(), NOW).sold) == 1


def test_a_refused_purchase_takes_nothing() -> None:
    plan = plan_group([order((TEA, 1), (SOUP, 1)), order((TEA, 3))], stock(), NOW)
    assert [DOMAIN_STATUS[type(e)] for _, e in plan.refused] == [409]
    assert plan.balances == {TEA: 0}


@settings(max_examples=200, deadline=None)
@given(
    balances=st.lists(st.none() | st.integers(0, 6), min_size=1, max_size=4),
    wanted=st.lists(
        st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4)), min_size=1, max_size=3), max_size=8
    ),
)
def test_no_counted_item_is_ever_sold_beyond_its_balance(
    balances: list[int | None], wanted: list[list[tuple[int, int]]]
) -> None:
    items = [uuid.UUID(int=100 + n) for n in range(len(balances))]
    known = {
        item: Stock(STORE, f"Item {n}", b) for n, (item, b) in enumerate(zip(items, balances, strict=True))
    }
    orders = [order(*((uuid.UUID(int=100 + i), c) for i, c in lines)) for lines in wanted]
    plan = plan_group(orders, known, NOW)
    assert len(plan.sold) + len(plan.refused) == len(orders)
    sold = Counter[uuid.UUID]()
    for _, bought in plan.sold:
        for line in bought.items:
            sold[line.item_id] += line.count
    for item, stocked in known.items():
        if stocked.balance is not None:
            left = plan.balances.get(item, stocked.balance)
            assert left == stocked.balance - sold[item] >= 0
    for refused, error in plan.refused:
        assert DOMAIN_STATUS[type(error)] == (
            404 if any(line.item_id not in known for line in refused.body.items) else 409
        )
