"""Calls from another thread handed to the event loop (broker_link.loop_handoff), as both links hand
paho's."""

from __future__ import annotations

import asyncio
import threading

import pytest

from broker_link.loop_handoff import LoopHandoff


async def test_a_call_from_another_thread_runs_on_the_loop_and_a_second_bind_is_refused() -> None:
    handoff = LoopHandoff()
    handoff.call(pytest.fail, "called before bind")  # no loop yet: dropped
    handoff.bind("Link")
    ran_on: list[threading.Thread] = []
    done = asyncio.Event()

    def note() -> None:
        ran_on.append(threading.current_thread())
        done.set()

    thread = threading.Thread(target=handoff.call, args=(note,))
    thread.start()
    thread.join()
    await asyncio.wait_for(done.wait(), 5.0)
    assert ran_on == [threading.main_thread()]
    with pytest.raises(RuntimeError, match=r"Link\.start\(\) called twice"):
        handoff.bind("Link")


def test_a_call_after_the_loop_closed_is_dropped_not_raised() -> None:
    handoff = LoopHandoff()

    async def bind() -> None:
        handoff.bind("Link")

    asyncio.run(bind())  # the loop is closed when this returns
    handoff.call(pytest.fail, "called on a closed loop")
