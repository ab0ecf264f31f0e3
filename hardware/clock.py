"""Time as the simulations and fakes read it: any `() -> seconds` function, and one that moves when told.

Injected rather than read from a global so that a test can say "the gate was open for 1.5 s" without waiting
1.5 s.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]


class ManualClock:
    """A clock that moves only when told: `clock()` reads it, `advance(s)` moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
