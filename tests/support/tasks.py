"""Stopping a test's background tasks: one that ignores its cancel fails the test instead of hanging it."""

from __future__ import annotations

import asyncio

STOP_WITHIN_S = 10.0


async def stop(*tasks: asyncio.Task[object]) -> None:
    """Cancel `tasks` and wait for them to end; fail naming any still running after STOP_WITHIN_S."""
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=STOP_WITHIN_S)
    if pending:
        names = ", ".join(sorted(t.get_name() for t in pending))
        raise AssertionError(f"still running {STOP_WITHIN_S:.0f} s after being cancelled: {names}")
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
