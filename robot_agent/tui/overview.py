"""Overview: every part's health, the MCU link, the e-stop, the sync backlog (a bar while it drains), the last
sync, the camera's fps, the faces enrolled and the assignment; all from GET /status, read by the app."""

from __future__ import annotations

import datetime as dt
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, ProgressBar, Static

from robot_agent.api import bodies
from robot_agent.tui.base import RobotScreen


def wall_ms(ms: object) -> str:
    """A wall clock in ms (as the status gives it) as a UTC time, or "never"."""
    if not isinstance(ms, int | float):
        return "never"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def since(iso: object) -> str:
    return str(iso)[:19].replace("T", " ") if iso else "?"


def clock(iso: object) -> str:
    """The time of day of an ISO timestamp (the status's own clock, UTC)."""
    return str(iso)[11:19] if iso else "?"


def duration(seconds: float) -> str:
    minutes = int(seconds) // 60
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{int(seconds)} s"


class OverviewScreen(RobotScreen):
    MODE = "overview"
    CSS_PATH = "overview.tcss"

    def __init__(self) -> None:
        super().__init__()
        self.drain_total = 0  # the backlog when it last started draining: the bar's 100 %

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="overview-top"):
            with Vertical(id="robot-facts"):
                yield Static("", id="estop")
                yield Static("", id="mcu")
                yield Static("", id="assignment")
                yield Static("", id="camera")
                yield Static("", id="faces-count")
            with Vertical(id="sync-facts"):
                yield Static("", id="sync-line")
                yield Static("", id="last-sync")
                yield ProgressBar(total=1, show_eta=False, id="backlog-bar")
        yield DataTable(id="parts", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#parts", DataTable)
        table.add_columns("part", "state", "since", "restarts", "last error")
        self.watch(self.tui, "status", self._show)

    def _show(self, status: bodies.StatusOut | None) -> None:
        if status is None:
            self.query_one("#estop", Static).update("Waiting for the agent's status...")
            return
        extra: dict[str, Any] = status.model_extra or {}
        estop = status.estop
        pressed = bool(estop.get("pressed"))
        self.query_one("#estop", Static).update(
            f"E-stop: {'PRESSED' if pressed else 'released'} (since {clock(estop.get('since'))})"
        )
        self.query_one("#estop").set_class(pressed, "alarm")
        mcu = status.mcu
        linked = bool(mcu.get("linked"))
        firmware = f", firmware {mcu['firmware']}" if mcu.get("firmware") else ""
        self.query_one("#mcu", Static).update(
            f"MCU link: {'up' if linked else 'DOWN'} (since {clock(mcu.get('since'))}){firmware}"
        )
        self.query_one("#mcu").set_class(not linked, "alarm")
        assignment = extra.get("assignment")
        train = (
            f"Train {assignment.get('train_number')}, {assignment.get('timezone')}"
            if isinstance(assignment, dict)
            else "No train assigned"
        )
        self.query_one("#assignment", Static).update(f"{train}; up {duration(status.uptime_s)}")
        camera = (extra.get("vision") or {}).get("camera")
        if isinstance(camera, dict):
            connected = "connected" if camera.get("connected") else "NOT connected"
            self.query_one("#camera", Static).update(f"Camera: {camera.get('fps', '?')} fps, {connected}")
        else:
            self.query_one("#camera", Static).update("Camera: none on this robot")
        faces = extra.get("faces")
        self.query_one("#faces-count", Static).update(
            f"Faces enrolled: {faces.get('enrolled', '?')}" if isinstance(faces, dict) else "Faces: off"
        )
        self._show_sync(extra.get("sync"))
        self._show_parts(status.parts)

    def _show_sync(self, sync: object) -> None:
        bar = self.query_one("#backlog-bar", ProgressBar)
        if not isinstance(sync, dict) or "backlog" not in sync:
            self.query_one("#sync-line", Static).update("Sync: not reported")
            bar.display = False
            return
        backlog = int(sync["backlog"])
        online = "online" if sync.get("online") else "OFFLINE"
        self.query_one("#sync-line", Static).update(f"Sync: {online}, backlog {backlog} events")
        self.query_one("#last-sync", Static).update(f"Last sync: {wall_ms(sync.get('last_ack_ms'))}")
        if backlog == 0:
            self.drain_total = 0
            bar.display = False
            return
        self.drain_total = max(self.drain_total, backlog)
        bar.display = True
        bar.update(total=self.drain_total, progress=self.drain_total - backlog)

    def _show_parts(self, parts: dict[str, Any]) -> None:
        table = self.query_one("#parts", DataTable)
        table.clear()
        for name, health in parts.items():
            if not isinstance(health, dict):
                continue
            state = str(health.get("state", "?"))
            table.add_row(
                name,
                state if state in ("running", "off") else state.upper(),
                since(health.get("since")),
                str(health.get("restarts", 0)),
                str(health.get("last_error") or ""),
                key=name,
            )
