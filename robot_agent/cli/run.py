"""`robot-agent run`: the agent itself, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from robot_agent.cli.common import Commands, load

# The program's own name, as these lines always had (and `--log-format json` users may filter on).
log = logging.getLogger("robot_agent")


def register(commands: Commands) -> None:
    run = commands.add_parser(
        "run",
        help="run the agent until stopped",
        description="Run the robot agent: open the devices of [hardware] (the MCU on serial_url, relinked "
        "whenever the link is lost, or the simulation), connect to [cloud] mqtt_url (reconnecting for ever; "
        "offline work goes on while the broker is away), keep a retained online/offline status, send the "
        "outbox in [storage] database to the cloud in signed batches, deleting events only when the cloud "
        "has committed them, check tickets shown to the camera, and publish telemetry (sync, each part's "
        "health, the MCU link, the e-stop) on up/telemetry every [cloud] telemetry_interval_s. Every part "
        "runs supervised: one that fails is logged and restarted with backoff, the others go on. Stops on "
        "SIGTERM or SIGINT within 5 s (the ticket check under way finished, the devices in their safe "
        "state; exit 0); refuses a bad configuration, key file or credentials file with exit 1.",
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from robot_agent.runtime import Agent

    agent = Agent(load(args))
    try:
        return asyncio.run(_until_signalled(agent.run()))
    finally:
        # Everything said before the exit is on disk, whatever buffers a handler keeps.
        for handler in logging.getLogger().handlers:
            handler.flush()


async def _until_signalled(work: Coroutine[Any, Any, None]) -> int:
    """Run `work` until SIGTERM or SIGINT cancels it; 0 then. Its own errors propagate."""
    task = asyncio.create_task(work)
    loop = asyncio.get_running_loop()

    def stop(signum: signal.Signals) -> None:
        log.info("stopping on %s", signum.name)
        task.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    await asyncio.wait([task])
    if not task.cancelled():
        task.result()
    return 0
