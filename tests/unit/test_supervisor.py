"""The supervisor's every transition, with time injected: no test waits for a real second."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from robot_agent.live import LiveEvents
from robot_agent.status import PartState, RobotStatus
from robot_agent.supervisor import Backoff, Supervisor, one_line


class Time:
    """A clock the parts move by hand, and a sleep that records what it was asked and returns at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.hold = asyncio.Event()  # set: sleeps return at once; clear: they wait for it
        self.hold.set()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await self.hold.wait()


def made(time: Time, draw: float = 0.5) -> tuple[Supervisor, RobotStatus, LiveEvents, list[tuple[str, str]]]:
    status = RobotStatus(uuid.uuid4())
    live = LiveEvents()
    seen: list[tuple[str, str]] = []
    status.listen(lambda kind, data: seen.append((data["part"], data["state"])) if kind == "part" else None)
    supervisor = Supervisor(status, live, sleep=time.sleep, clock=time.clock, draw=lambda: draw)
    return supervisor, status, live, seen


def failing(times: int, then: Any = None, *, runs_s: float = 0.0, time: Time | None = None) -> Any:
    calls = {"n": 0}

    async def part() -> None:
        calls["n"] += 1
        if time is not None:
            time.now += runs_s
        if calls["n"] <= times:
            raise RuntimeError(f"broken\nagain {calls['n']}")
        if then is not None:
            await then()

    part.calls = calls  # type: ignore[attr-defined]
    return part


async def test_a_failing_part_is_reported_and_restarted_with_doubling_capped_backoff() -> None:
    time = Time()
    supervisor, status, live, seen = made(time)
    part = failing(7)
    supervisor.add("sync sender", part)
    await supervisor.run()
    assert time.slept == [1, 2, 4, 8, 16, 30, 30]
    assert part.calls["n"] == 8
    health = status.parts()["sync sender"]
    assert (health.state, health.restarts) == (PartState.STOPPED, 7)
    assert health.last_error == "RuntimeError: broken again 7"  # one line
    faults = [e.data for e in live.recent() if e.kind == "fault"]
    assert [f["restarts"] for f in faults] == list(range(1, 8))
    assert faults[0] == {
        "part": "sync sender",
        "error": "RuntimeError: broken again 1",
        "restarts": 1,
        "retry_in_s": 1.0,
    }
    assert seen == [("sync sender", "starting")] + [
        ("sync sender", "running"),
        ("sync sender", "failed"),
    ] * 7 + [
        ("sync sender", "running"),
        ("sync sender", "stopped"),
    ]


async def test_the_backoff_starts_again_after_a_part_ran_a_healthy_minute() -> None:
    time = Time()
    supervisor, *_ = made(time)
    runs = iter([0.0, 0.0, 61.0, 0.0, 0.0])

    async def part() -> None:
        time.now += next(runs, 0.0)
        if len(time.slept) < 5:
            raise OSError("gone")

    supervisor.add("down-sync", part)
    await supervisor.run()
    assert time.slept == [1, 2, 1, 2, 4]


def test_jitter_spreads_each_wait_by_a_quarter_either_way() -> None:
    backoff = Backoff()
    assert backoff.jittered(8.0, 0.0) == 6.0
    assert backoff.jittered(8.0, 0.5) == 8.0
    assert backoff.jittered(8.0, 0.999) == pytest.approx(9.996)
    assert backoff.next_delay(None, 0.0) == 1.0
    assert backoff.next_delay(16.0, 59.9) == 30.0
    assert backoff.next_delay(30.0, 60.0) == 1.0


async def test_a_part_that_returns_is_stopped_and_never_restarted() -> None:
    time = Time()
    supervisor, status, live, _seen = made(time)
    part = failing(0)
    supervisor.add("camera fan-out", part)
    await supervisor.run()
    assert part.calls["n"] == 1
    assert time.slept == []
    assert status.parts()["camera fan-out"].state is PartState.STOPPED
    assert [e for e in live.recent() if e.kind == "fault"] == []


async def test_a_failing_part_never_takes_the_others_down_and_cancel_stops_them_all() -> None:
    status = RobotStatus(uuid.uuid4())
    in_third_backoff = asyncio.Event()
    other_ran = asyncio.Event()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            in_third_backoff.set()
            await asyncio.Event().wait()  # the failing part stays in its backoff until cancelled

    async def steady() -> None:
        other_ran.set()
        await asyncio.Event().wait()

    supervisor = Supervisor(status, LiveEvents(), sleep=sleep, clock=lambda: 0.0, draw=lambda: 0.5)
    supervisor.add("telemetry", failing(100))
    supervisor.add("ticket scanner", steady)
    run = asyncio.create_task(supervisor.run())
    await other_ran.wait()
    await in_third_backoff.wait()
    parts = status.parts()
    assert (parts["telemetry"].state, parts["telemetry"].restarts) == (PartState.FAILED, 3)
    assert parts["ticket scanner"].state is PartState.RUNNING
    assert run.done() is False
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    parts = status.parts()
    assert parts["telemetry"].state is PartState.STOPPED  # cancelled in its backoff
    assert parts["ticket scanner"].state is PartState.STOPPED
    assert parts["ticket scanner"].restarts == 0


def test_a_part_is_named_once_and_errors_fit_one_line() -> None:
    supervisor = Supervisor(RobotStatus(uuid.uuid4()), LiveEvents())

    async def part() -> None:
        return None

    supervisor.add("a", part)
    with pytest.raises(ValueError, match="supervised already"):
        supervisor.add("a", part)
    assert one_line(TimeoutError()) == "TimeoutError"
    long = one_line(ValueError("x" * 500))
    assert len(long) == 200
    assert long.endswith("…")
