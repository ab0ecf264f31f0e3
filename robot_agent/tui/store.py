"""Store: the catalogue of the stores serving the robot's train (GET /catalogue), the orders with their state
and task (GET /orders), and an order placed on behalf of a passenger (POST /actions/orders)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Label, Static

from robot_agent.api.bodies import CatalogueItem
from robot_agent.tui.base import Field, RobotScreen


@dataclass(frozen=True)
class OrderForm:
    user_id: uuid.UUID
    count: int
    compartment: int | None


class OrderScreen(ModalScreen[OrderForm | None]):
    """Who the order is for, how many, and (if wanted) which compartment; Enter on the last field
    places it."""

    CSS_PATH = "modals.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, item: CatalogueItem) -> None:
        super().__init__()
        self.item = item

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Order {self.item.name} for a passenger", id="dialog-title")
            yield Label(
                f"{self.item.balance} in stock, {self.item.price_penny / 100:.2f} each", id="dialog-why"
            )
            yield Field(placeholder="passenger's user id (uuid)", id="order-user")
            yield Field(value="1", placeholder="how many", restrict=r"[0-9]{0,3}", id="order-count")
            yield Field(
                placeholder="compartment 0-7 (empty: the lowest free)", restrict=r"[0-7]?", id="order-box"
            )
            yield Label("", id="order-problem")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#order-user").focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "order-box":
            self.focus_next()
            return
        try:
            user = uuid.UUID(self.query_one("#order-user", Input).value.strip())
        except ValueError:
            self.query_one("#order-problem", Label).update("The passenger's user id is not a uuid.")
            self.query_one("#order-user").focus()
            return
        count = int(self.query_one("#order-count", Input).value or "0")
        if count < 1:
            self.query_one("#order-problem", Label).update("Order at least one.")
            self.query_one("#order-count").focus()
            return
        box = self.query_one("#order-box", Input).value
        self.dismiss(OrderForm(user, count, int(box) if box else None))

    def action_cancel(self) -> None:
        self.dismiss(None)


class StoreScreen(RobotScreen):
    MODE = "store"
    CSS_PATH = "store.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "order", "Order for a passenger"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, tuple[uuid.UUID, CatalogueItem]] = {}  # row key: store id, item

    def compose_body(self) -> ComposeResult:
        yield Static("Catalogue (o: order the chosen item)", classes="title")
        yield DataTable(id="catalogue", cursor_type="row", zebra_stripes=True)
        yield Static("Orders", classes="title")
        yield DataTable(id="orders", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#catalogue", DataTable).add_columns("store", "item", "price", "in stock")
        self.query_one("#orders", DataTable).add_columns(
            "at", "purchase", "state", "box", "task", "conflicts"
        )

    def on_screen_resume(self) -> None:
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(group="load", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        client = self.tui.client
        catalogue = await self.tui.act(client.catalogue, self)
        if catalogue is not None:
            table = self.query_one("#catalogue", DataTable)
            table.clear()
            self.items.clear()
            for store in catalogue.stores:
                for item in store.items:
                    key = f"{store.id}/{item.id}"
                    self.items[key] = (store.id, item)
                    table.add_row(
                        store.name, item.name, f"{item.price_penny / 100:.2f}", str(item.balance), key=key
                    )
        orders = await self.tui.act(client.orders, self)
        if orders is not None:
            table = self.query_one("#orders", DataTable)
            table.clear()
            for order in orders.orders:
                conflicts = "; ".join(str(c.get("detail") or c.get("kind")) for c in order.conflicts)
                table.add_row(
                    order.at[11:19],
                    str(order.purchase_id)[:8],
                    order.state,
                    "" if order.compartment is None else str(order.compartment),
                    str(order.task_id)[:8] if order.task_id else "",
                    conflicts,
                    key=str(order.purchase_id),
                )

    def action_order(self) -> None:
        table = self.query_one("#catalogue", DataTable)
        if table.row_count == 0:
            self.tell("The catalogue is empty: nothing to order.")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key is None or key not in self.items:
            return
        store_id, item = self.items[key]
        self.order(store_id, item)

    @work(group="act", exclusive=True, exit_on_error=False)
    async def order(self, store_id: uuid.UUID, item: CatalogueItem) -> None:
        form = await self.app.push_screen_wait(OrderScreen(item))
        if form is None:
            self.tell("No order placed.")
            return
        placed = await self.tui.act(
            lambda: self.tui.client.place_order(
                store_id, form.user_id, {item.id: form.count}, form.compartment
            ),
            self,
        )
        if placed is not None:
            self.tell(
                f"Order {str(placed.purchase_id)[:8]} placed: {form.count} x {item.name} in compartment "
                f"{placed.compartment}."
            )
            self.load()
