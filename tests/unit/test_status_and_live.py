"""The status object every reader shares, and the live events' bounded, late-joinable stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from typing import Any

from robot_agent.live import LiveEvent, LiveEvents
from robot_agent.status import PartState, RobotStatus

T0 = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


class Ticking:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


async def test_parts_mcu_and_estop_are_kept_with_since_and_told_to_listeners() -> None:
    status = RobotStatus(uuid.UUID(int=1), now=Ticking())
    heard: list[tuple[str, dict[str, Any]]] = []
    status.listen(lambda kind, data: heard.append((kind, data)))
    status.part_changed("camera", PartState.RUNNING)
    status.part_changed("camera", PartState.FAILED, "device /dev/video0 vanished")
    status.part_changed("camera", PartState.RUNNING)
    status.mcu_changed(True, "1.2.0")
    status.mcu_changed(True)  # no change: not told
    status.estop_changed(True)
    status.estop_changed(True)
    camera = status.parts()["camera"]
    assert (camera.state, camera.restarts, camera.last_error) == (
        PartState.RUNNING,
        1,
        "device /dev/video0 vanished",
    )
    assert [kind for kind, _ in heard] == ["part", "part", "part", "mcu", "estop"]
    assert status.estop_pressed
    assert status.mcu_linked
    snapshot = await status.snapshot()
    assert snapshot["mcu"]["firmware"] == "1.2.0"
    assert snapshot["parts"]["camera"]["restarts"] == 1


async def test_sources_are_read_at_snapshot_time_sync_or_async_and_a_failing_one_hides_nothing_else() -> None:
    status = RobotStatus(uuid.UUID(int=1))
    backlog = {"events": 3}

    async def faces() -> dict[str, Any]:
        return {"enrolled": 2}

    def broken() -> dict[str, Any]:
        raise OSError("database is locked")

    status.add_source("sync", lambda: dict(backlog))
    status.add_source("faces", faces)
    status.add_source("camera", broken)
    status.add_source("nothing", lambda: None)
    backlog["events"] = 4
    snapshot = await status.snapshot()
    assert snapshot["sync"] == {"events": 4}
    assert snapshot["faces"] == {"enrolled": 2}
    assert snapshot["camera"] == {"error": "OSError: database is locked"}
    assert "nothing" not in snapshot


async def test_a_watcher_gets_events_from_any_thread_in_order_and_only_its_kinds() -> None:
    live = LiveEvents()
    async with live.subscribe(["ticket_checked"]) as watcher:
        worker = threading.Thread(
            target=lambda: [live.publish(k, {"n": n}) for n, k in enumerate(["log", "ticket_checked"] * 3)]
        )
        worker.start()
        worker.join()
        got: list[LiveEvent] = []
        async with asyncio.timeout(5):
            async for event in watcher:
                got.append(event)
                if len(got) == 3:
                    break
    assert [(e.kind, e.data["n"]) for e in got] == [
        ("ticket_checked", 1),
        ("ticket_checked", 3),
        ("ticket_checked", 5),
    ]
    assert [e.seq for e in got] == sorted(e.seq for e in got)


async def test_a_slow_watcher_loses_the_oldest_and_is_told_how_many() -> None:
    live = LiveEvents(queue=5)
    watcher = live.subscribe()
    for n in range(12):
        live.publish("log", {"n": n})
    got: list[LiveEvent] = []
    async for event in watcher:
        got.append(event)
        if event.kind != "dropped" and event.data["n"] == 11:
            break
    watcher.close()
    assert got[0].kind == "dropped"
    assert got[0].data == {"count": 7}
    assert [e.data["n"] for e in got[1:]] == [7, 8, 9, 10, 11]
    assert watcher.dropped == 7


async def test_a_late_watcher_starts_after_the_seq_it_saw_from_what_is_kept() -> None:
    live = LiveEvents(history=3)
    for n in range(5):
        live.publish("log", {"n": n})
    assert [e.data["n"] for e in live.recent()] == [2, 3, 4]
    watcher = live.subscribe(after=3)  # saw seq 3 (n=2): gets n=3, 4
    live.publish("log", {"n": 5})
    got = []
    async for event in watcher:
        got.append(event.data["n"])
        if len(got) == 3:
            break
    watcher.close()
    assert got == [3, 4, 5]
