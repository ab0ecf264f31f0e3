"""Faces: the passengers whose faces the robot holds (GET /faces; never an embedding), a passenger's faces
deleted, and an enrolment from the robot's own camera (POST /actions/faces/{user}/capture) whose progress and
per-frame verdict come as live "enrolment" events."""

from __future__ import annotations

import collections
import uuid
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, ProgressBar, Static

from robot_agent.api import bodies
from robot_agent.tui.base import Field, RobotScreen
from robot_agent.tui.modals import ConfirmScreen

FRAMES = 5
CAPTURE_TIMEOUT_S = 20


class FacesScreen(RobotScreen):
    MODE = "faces"
    CSS_PATH = "faces.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "enrol", "Enrol from camera"),
        Binding("d", "delete", "Delete"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "leave", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.enrolling: uuid.UUID | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="faces-total", classes="title")
        yield DataTable(id="faces", cursor_type="row", zebra_stripes=True)
        yield Field(
            placeholder="passenger's user id (uuid), then Enter: look at the camera",
            id="enrol-user",
            classes="folded",
        )
        yield ProgressBar(total=FRAMES, show_eta=False, id="enrol-bar", classes="folded")
        yield Static("", id="enrol-frame", classes="note")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#faces", DataTable).add_columns("passenger", "faces", "source", "enrolled at")
        self.tui.listen(self._live)

    def on_unmount(self) -> None:
        self.tui.unlisten(self._live)

    def on_screen_resume(self) -> None:
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(group="load", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        found = await self.tui.act(self.tui.client.faces, self)
        if found is None:
            return
        table = self.query_one("#faces", DataTable)
        table.clear()
        for face in found.faces:
            table.add_row(
                str(face.user_id),
                str(face.count),
                face.source,
                (face.enrolled_at or "")[:19].replace("T", " "),
                key=str(face.user_id),
            )
        passengers = len({group.user_id for group in found.faces})
        self.query_one("#faces-total", Static).update(
            f"{found.total} faces of {passengers} passengers on this robot"
        )

    def _selected(self) -> uuid.UUID | None:
        table = self.query_one("#faces", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return uuid.UUID(key) if key else None

    def action_delete(self) -> None:
        user = self._selected()
        if user is None:
            self.tell("No passenger chosen: pick one in the list first.")
            return
        self.delete(user)

    @work(group="act", exclusive=True, exit_on_error=False)
    async def delete(self, user: uuid.UUID) -> None:
        if not await self.app.push_screen_wait(ConfirmScreen(f"Delete every face of {user}?")):
            self.tell("Nothing deleted.")
            return
        done = await self.tui.act(lambda: self.tui.client.delete_faces(user), self)
        if done is not None:
            self.tell(f"{done.deleted} faces of {user} deleted.")
            self.load()

    def action_enrol(self) -> None:
        field = self.query_one("#enrol-user", Input)
        field.display = True
        field.focus()

    def action_leave(self) -> None:
        self.query_one("#enrol-user").display = False
        self.query_one("#faces", DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            user = uuid.UUID(event.value.strip())
        except ValueError:
            self.tell("That is not a user id (a uuid such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427).")
            return
        event.input.value = ""
        self.action_leave()
        self.enrol(user)

    @work(group="act", exclusive=True, exit_on_error=False)
    async def enrol(self, user: uuid.UUID) -> None:
        bar = self.query_one("#enrol-bar", ProgressBar)
        bar.update(total=FRAMES, progress=0)
        bar.display = True
        self.enrolling = user
        self.query_one("#enrol-frame", Static).update("")
        self.tell(f"Enrolling {user}: the passenger looks at the camera...")
        try:
            done = await self.tui.act(
                lambda: self.tui.client.capture_faces(user, FRAMES, CAPTURE_TIMEOUT_S), self
            )
        finally:
            self.enrolling = None
        if done is None:
            bar.display = False
            return
        enrolled = sum(1 for result in done.results if result.get("face_id"))
        refused = collections.Counter(verdict(r) for r in done.results if not r.get("face_id"))
        why = ", ".join(f"{words} x{n}" if n > 1 else words for words, n in refused.most_common())
        frames = f"; {sum(refused.values())} frames refused: {why}" if refused else ""
        self.tell(f"{enrolled} of {FRAMES} faces enrolled for {user}{frames}.")
        self.load()

    def _live(self, event: bodies.EventOut) -> None:
        if event.kind != "enrolment" or self.enrolling is None:
            return
        if str(event.data.get("user_id")) != str(self.enrolling):
            return
        bar = self.query_one("#enrol-bar", ProgressBar)
        of = event.data.get("of")
        done = event.data.get("done")
        if isinstance(of, int) and isinstance(done, int):
            bar.update(total=of, progress=done)
        self.query_one("#enrol-frame", Static).update(
            f"Frame {event.data.get('frame')}: {verdict(event.data)}; {done} of {of} faces enrolled"
        )


def verdict(result: dict[str, object]) -> str:
    """A frame's verdict in plain words, as the API gives it (a capture's result or an "enrolment" event):
    "enrolled", or why it was refused ("no face in view", ...)."""
    words = result.get("result")
    return str(words) if words else str(result.get("reason") or "?")
