"""The loop-lag probe's arithmetic, on an injected clock: how late each wake-up was, the nearest-rank
percentiles of the last `window`, a clock's jitter counted as no lag."""

from __future__ import annotations

import asyncio

import pytest

from robot_agent.loop_lag import LoopLag, percentile


class Stop(Exception):
    """Ends the probe's loop once the planned wake-ups are spent."""


def drive(probe_lags_ms: list[float], *, window: int = 300) -> LoopLag:
    """Run a probe whose sleeps each wake the next of `probe_lags_ms` late, on a clock they advance."""
    now = [1000.0]
    lags = iter(probe_lags_ms)

    async def sleep(seconds: float) -> None:
        try:
            now[0] += seconds + next(lags) / 1000
        except StopIteration:
            raise Stop from None

    probe = LoopLag(0.1, window, clock=lambda: now[0], sleep=sleep)
    with pytest.raises(Stop):
        asyncio.run(probe.run())
    return probe


def test_percentiles_are_nearest_rank() -> None:
    ordered = [float(n) for n in range(1, 301)]
    assert percentile(ordered, 0.5) == 150.0
    assert percentile(ordered, 0.99) == 297.0  # 0.99 * 300 is 297.00000000000006: not rank 298
    assert percentile(ordered, 1.0) == 300.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.0) == 1.0


def test_the_snapshot_gives_the_lag_of_the_kept_wake_ups_in_ms() -> None:
    # 97 wake-ups 1 ms late, then three 50, 80 and 200 ms late: p99 of 100 is the 99th, 80 ms.
    probe = drive([1.0] * 97 + [50.0, 80.0, 200.0])
    shown = probe.snapshot()
    assert shown == {
        "interval_ms": 100.0,
        "lag_p50_ms": pytest.approx(1.0),
        "lag_p99_ms": pytest.approx(80.0),
        "lag_max_ms": pytest.approx(200.0),
        "window": 100,
        "samples": 100,
    }


def test_only_the_last_window_is_kept_and_early_wake_ups_count_as_none() -> None:
    probe = drive([500.0] * 10 + [-0.01] * 20, window=20)  # the slow start has left the window
    shown = probe.snapshot()
    assert (shown["lag_p99_ms"], shown["lag_max_ms"]) == (0.0, 0.0)
    assert (shown["window"], shown["samples"]) == (20, 30)


def test_before_the_first_wake_up_there_is_no_lag_to_show() -> None:
    shown = LoopLag().snapshot()
    assert (shown["lag_p50_ms"], shown["lag_p99_ms"], shown["window"], shown["samples"]) == (None, None, 0, 0)
