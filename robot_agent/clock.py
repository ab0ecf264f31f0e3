"""Where the robot's times come from: every event, ticket and telemetry sample is stamped through a `Clock`.

Kept apart from any one user (the outbox, tickets, the sender, telemetry, the runtime all take one) and
injected, so that a test can hand in a clock of its own.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from uuid_utils.compat import uuid7


@dataclass(frozen=True)
class Clock:
    """Where an event's times come from: the wall clock (may be hours off), a monotonic clock, and the id of
    this boot (monotonic time means nothing across a restart)."""

    boot: uuid.UUID = field(default_factory=uuid7)

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def mono_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000
