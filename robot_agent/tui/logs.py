"""Logs: the agent's log lines as they happen (live "log" events), filtered by the lowest level shown and by
the part of the agent they come from (sync, camera, mcu, api, ...)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from robot_agent.api import bodies
from robot_agent.api.logs import OTHER, PARTS
from robot_agent.tui.base import Field, RobotScreen

KIND = "log"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_ROWS = 1000


LOG_PARTS = sorted({*PARTS.values(), OTHER})  # the parts the agent names its log lines by


def part_of(data: dict[str, object]) -> str:
    return str(data.get("part") or data.get("logger") or "?")


class LogsScreen(RobotScreen):
    MODE = "logs"
    CSS_PATH = "logs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "level", "Level"),
        Binding("p", "part", "Part"),
        Binding("escape", "leave", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.min_level = "INFO"
        self.part = ""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="log-filter", classes="title")
        yield DataTable(id="logs", cursor_type="row")
        yield Field(
            placeholder=f"part ({', '.join(LOG_PARTS)}), empty for all, Enter",
            id="part",
            classes="folded",
        )

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#logs", DataTable).add_columns("at", "level", "part", "message")
        self._refill()
        self.tui.listen(self._live)

    def on_unmount(self) -> None:
        self.tui.unlisten(self._live)

    def _shown(self, event: bodies.EventOut) -> bool:
        level = str(event.data.get("level", "INFO"))
        rank = LEVELS.index(level) if level in LEVELS else 0
        if rank < LEVELS.index(self.min_level):
            return False
        return not self.part or part_of(event.data) == self.part

    def _refill(self) -> None:
        self.query_one("#log-filter", Static).update(
            f"Level {self.min_level} and above, part: {self.part or 'all'}"
        )
        table = self.query_one("#logs", DataTable)
        table.clear()
        for event in self.tui.kept.get(KIND, ()):
            self._add(event)

    def _live(self, event: bodies.EventOut) -> None:
        if event.kind == KIND:
            self._add(event)

    def _add(self, event: bodies.EventOut) -> None:
        if not self._shown(event):
            return
        table = self.query_one("#logs", DataTable)
        data = event.data
        message = str(data.get("message", ""))
        if data.get("error"):
            message += f" ({data['error']})"
        table.add_row(event.at[11:19], str(data.get("level", "")), part_of(data), message, key=str(event.seq))
        while table.row_count > MAX_ROWS:
            table.remove_row(next(iter(table.rows)))
        table.move_cursor(row=table.row_count - 1)

    def action_level(self) -> None:
        self.min_level = LEVELS[(LEVELS.index(self.min_level) + 1) % (len(LEVELS) - 1)]
        self._refill()

    def action_part(self) -> None:
        field = self.query_one("#part", Input)
        field.display = True
        field.value = self.part
        field.focus()

    def action_leave(self) -> None:
        self.query_one("#part").display = False
        self.query_one("#logs", DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.part = event.value.strip()
        self.action_leave()
        self._refill()
