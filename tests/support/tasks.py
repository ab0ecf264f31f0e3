"""Stopping a test's background tasks: one that ignores its cancel fails the test instead of hanging it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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


async def eventually(
    check: Callable[[], bool],
    what: str,
    within_s: float = 5.0,
    *,
    poll_s: float = 0.01,
    in_thread: bool = False,
) -> None:
    """Wait until `check()` holds, polling every `poll_s`; fail saying "not {what} within ..." otherwise.
    `in_thread` runs each check off the event loop (one that reads a database, say)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not (await asyncio.to_thread(check) if in_thread else check()):
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"not {what} within {within_s:g} s")
        await asyncio.sleep(poll_s)
