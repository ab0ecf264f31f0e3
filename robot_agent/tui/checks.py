"""Checks: the ticket verdicts as they happen, with their reasons (live "ticket_checked" events), and a ticket
pasted by hand to verify (POST /actions/tickets/verify; a valid ticket is used up)."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input

from robot_agent.api import bodies
from robot_agent.tui.base import Field, RobotScreen

KIND = "ticket_checked"
MAX_ROWS = 500


class ChecksScreen(RobotScreen):
    MODE = "checks"
    CSS_PATH = "checks.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "paste", "Verify a ticket"),
        Binding("escape", "leave", "Back to the list", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="checks", cursor_type="row", zebra_stripes=True)
        yield Field(placeholder="paste a ticket (its text) and press Enter to verify it", id="ticket")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#checks", DataTable)
        table.add_columns("at", "verdict", "by", "ticket", "reason")
        for event in self.tui.kept.get(KIND, ()):
            self._add(event)
        self.tui.listen(self._live)

    def on_unmount(self) -> None:
        self.tui.unlisten(self._live)

    def _live(self, event: bodies.EventOut) -> None:
        if event.kind == KIND:
            self._add(event)

    def _add(self, event: bodies.EventOut) -> None:
        table = self.query_one("#checks", DataTable)
        data = event.data
        verdict = str(data.get("verdict", "?"))
        table.add_row(
            str(data.get("checked_at", event.at))[11:19],
            verdict if data.get("ok") else verdict.upper(),
            str(data.get("method", "")),
            str(data.get("ticket_id") or "unreadable")[:8],
            str(data.get("reason", "")),
            key=str(event.seq),
        )
        while table.row_count > MAX_ROWS:
            table.remove_row(next(iter(table.rows)))
        table.move_cursor(row=table.row_count - 1)

    def action_paste(self) -> None:
        self.query_one("#ticket", Input).focus()

    def action_leave(self) -> None:
        self.query_one("#checks", DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        code = event.value.strip()
        if code:
            self.verify(code)

    @work(group="verify", exclusive=True, exit_on_error=False)
    async def verify(self, code: str) -> None:
        self.tell("Checking the ticket...")
        outcome = await self.tui.act(lambda: self.tui.client.verify(code), self)
        if outcome is None:
            return
        self.query_one("#ticket", Input).value = ""
        if outcome.ok:
            self.tell(f"VALID: {outcome.reason or 'ticket accepted'} (ticket {outcome.ticket_id})")
        else:
            self.tell(f"REFUSED ({outcome.verdict}): {outcome.reason}")
