"""Boards for MCU protocol tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_bridge.mcu import Snapshot
from firmware_bridge.schema import Fields, ReplyResult


@dataclass
class RecordingBoard:
    """Executes nothing physical: records each command, and emits the events a test queues."""

    executed: list[tuple[str, Fields]] = field(default_factory=list)
    pending_events: list[tuple[str, Fields]] = field(default_factory=list)
    safe_states: int = 0
    estop: bool = False

    def execute(self, command: str, fields: Fields, now: float) -> ReplyResult:
        if self.estop and command != "STOP":
            return ReplyResult.REFUSED_ESTOP
        self.executed.append((command, fields))
        return ReplyResult.OK

    def safe_state(self, now: float) -> None:
        self.safe_states += 1

    def poll(self, now: float) -> list[tuple[str, Fields]]:
        events, self.pending_events = self.pending_events, []
        return events

    def snapshot(self, now: float) -> Snapshot:
        return Snapshot(gate=0, estop=self.estop, outputs=0, faults=0)
