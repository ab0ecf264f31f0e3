"""The event loop's lag: how late a 100 ms sleep wakes, always measured, so a blocked loop shows.

Every part of `robot-agent run` but the worker threads shares one asyncio loop: a callback that blocks it
(a slow synchronous call, a long JSON dump, the GIL held by a busy thread) delays everything else, the
e-stop's handling, the local API's answers, MQTT acks. `LoopLag` is a supervised part that sleeps `interval_s`
and records how much later than asked it woke; the status's "loop" source gives the p50, p99 and maximum of
the last `window` wake-ups (30 s at the defaults), so GET /status, telemetry and `make bench` show it. It
costs one timer wake-up per interval and a sort of at most `window` floats per snapshot.

`clock` and `sleep` are injectable so that tests drive it without time.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

INTERVAL_S: Final = 0.1
WINDOW: Final = 300  # wake-ups kept: the last 30 s at INTERVAL_S


def percentile(ordered: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of `ordered` (sorted, not empty): the smallest value with at least `share`
    of the values at or below it."""
    # Rounded first: 0.99 * 300 is 297.00000000000006, whose ceiling would be rank 298.
    rank = max(1, math.ceil(round(share * len(ordered), 6)))
    return ordered[min(rank, len(ordered)) - 1]


class LoopLag:
    """See the module: `run()` as a supervised part, `snapshot()` as the status's "loop" source."""

    def __init__(
        self,
        interval_s: float = INTERVAL_S,
        window: int = WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._lags_s: collections.deque[float] = collections.deque(maxlen=window)
        self.samples = 0  # wake-ups measured since the start, in all

    async def run(self) -> None:
        """Sleep and measure for ever (until cancelled)."""
        while True:
            start = self._clock()
            await self._sleep(self.interval_s)
            self.record(self._clock() - start - self.interval_s)

    def record(self, lag_s: float) -> None:
        """One wake-up `lag_s` late (a clock's jitter may make it slightly negative: counted as 0)."""
        self._lags_s.append(max(0.0, lag_s))
        self.samples += 1

    def snapshot(self) -> dict[str, Any]:
        """p50, p99 and the maximum of the kept wake-ups' lag in ms (None before the first), how many are
        kept (`window`) and how many were measured in all (`samples`)."""
        ordered = sorted(self._lags_s)
        shown: dict[str, Any] = {"interval_ms": round(self.interval_s * 1000, 1)}
        for name, share in (("lag_p50_ms", 0.5), ("lag_p99_ms", 0.99), ("lag_max_ms", 1.0)):
            shown[name] = round(percentile(ordered, share) * 1000, 2) if ordered else None
        return shown | {"window": len(ordered), "samples": self.samples}
