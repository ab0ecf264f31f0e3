"""Sync: the outbox's depth and oldest event, the last ack, the down-sync cursors and the dead letters
(GET /sync, read every few seconds while shown), and "sync now" (POST /actions/sync)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from robot_agent.api.bodies import SyncOut
from robot_agent.tui.base import RobotScreen
from robot_agent.tui.client import AgentUnreachable, ApiRefusal

REFRESH_S = 2.0


class SyncScreen(RobotScreen):
    MODE = "sync"
    CSS_PATH = "sync.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "sync_now", "Sync now"),
        Binding("r", "refresh", "Refresh"),
    ]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="sync-facts"):
            yield Static("", id="sync-online")
            yield Static("", id="sync-outbox")
        yield Static("Down-sync cursors", classes="title")
        yield DataTable(id="cursors", cursor_type="row")
        yield Static("Dead letters", classes="title")
        yield DataTable(id="dead-letters", cursor_type="row")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#cursors", DataTable).add_columns("scope", "cursor", "at")
        self.query_one("#dead-letters", DataTable).add_columns("seq", "type", "reason", "at")

    def on_screen_resume(self) -> None:
        self.watch_sync()

    def on_screen_suspend(self) -> None:
        self.workers.cancel_group(self, "watch")

    def action_refresh(self) -> None:
        self.watch_sync()

    @work(group="watch", exclusive=True, exit_on_error=False)
    async def watch_sync(self) -> None:
        while True:
            try:
                self._show(await self.tui.client.sync())
            except AgentUnreachable:
                pass  # the banner says so
            except ApiRefusal as err:
                self.query_one("#sync-online", Static).update(f"The agent cannot tell its sync: {err.detail}")
            await asyncio.sleep(REFRESH_S)

    def _show(self, sync: SyncOut) -> None:
        outbox = sync.outbox
        self.query_one("#sync-online", Static).update(
            f"Cloud link: {'online' if sync.online else 'OFFLINE'}"
            f"   last ack: {(outbox.last_ack_at or 'never')[:19].replace('T', ' ')}"
        )
        age = f", oldest {outbox.oldest_age_s:.0f} s old" if outbox.oldest_age_s is not None else ""
        self.query_one("#sync-outbox", Static).update(f"Outbox: {outbox.depth} events waiting{age}")
        cursors = self.query_one("#cursors", DataTable)
        cursors.clear()
        for cursor in sync.cursors:
            cursors.add_row(cursor.scope, str(cursor.cursor), (cursor.at or "")[:19].replace("T", " "))
        dead = self.query_one("#dead-letters", DataTable)
        dead.clear()
        for letter in sync.dead_letters:
            dead.add_row(
                "" if letter.seq is None else str(letter.seq),
                letter.type,
                letter.reason,
                (letter.at or "")[:19].replace("T", " "),
            )

    def action_sync_now(self) -> None:
        self.sync_now()

    @work(group="act", exclusive=True, exit_on_error=False)
    async def sync_now(self) -> None:
        done = await self.tui.act(self.tui.client.sync_now, self)
        if done is not None:
            self.tell("Sync asked: the outbox drains as the cloud acknowledges.")
            self.watch_sync()
