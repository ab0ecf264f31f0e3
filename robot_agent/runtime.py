"""`robot-agent run`: the agent's long-running process, its parts started together and stopped together.

`Agent` does everything that can fail on a bad set-up (key, credentials, database, broker URL) when it is
built, so that `robot-agent run` refuses with one line before anything starts. `Agent.run()` then runs every
part as one task of one TaskGroup until it is cancelled (SIGTERM or SIGINT): the sync sender, down-sync,
telemetry and, with `[tickets] scan`, the ticket scanner (camera, QR codes, the ticket desk); adding a part
(the hardware) is one more task there. The link to the broker connects in the background and
reconnects for ever: a broker that is down or refuses the robot leaves the agent working offline, its events
waiting in the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from models.credentials import parse_credentials
from robot_agent.clock import Clock
from robot_agent.config import RobotConfig
from robot_agent.errors import RobotAgentError
from robot_agent.identity import load_key_file
from robot_agent.store.database import open_store
from robot_agent.sync import telemetry
from robot_agent.sync.downsync import DownSync
from robot_agent.sync.mqtt import RobotLink
from robot_agent.sync.sender import Sender
from robot_agent.sync.telemetry import Telemetry
from robot_agent.tickets import TicketDesk
from robot_agent.vision.camera import Camera
from robot_agent.vision.scan import TicketScanner

log = logging.getLogger(__name__)


def read_credentials(path: Path) -> tuple[str, str]:
    """`username:password` for the broker, from a file only its owner can read (`cloud-sync robot
    provision` writes it)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RobotAgentError(f"cannot read the broker credentials {path}: {err}") from err
    try:
        return parse_credentials(text, mode, str(path))
    except ValueError as err:
        raise RobotAgentError(str(err)) from err


class Agent:
    """The robot agent: built from the configuration (raising RobotAgentError on a bad set-up), then `run()`
    until cancelled."""

    def __init__(self, config: RobotConfig, *, telemetry_interval_s: float = telemetry.INTERVAL_S) -> None:
        self.config = config
        robot = config.robot.id
        key = load_key_file(config.robot.key_file)
        cloud = config.cloud
        username, password = (
            read_credentials(cloud.credentials_file) if cloud.credentials_file is not None else (None, None)
        )
        self.link = RobotLink(robot, cloud.mqtt_url, username, password, cloud.keepalive_s)
        self.store = open_store(config.storage.database)
        clock = Clock()
        self.sender = Sender(self.store, self.link, robot, key, clock)
        self.downsync = DownSync(self.link, self.store)
        self.scanner: TicketScanner | None = None
        if config.tickets.scan:
            desk = TicketDesk(self.store, config, clock)
            self.scanner = TicketScanner(Camera(config.camera), desk, config.tickets.debounce_s)

        self.telemetry = Telemetry(
            robot,
            self.link,
            self.store,
            self.sender,
            self.downsync,
            clock,
            interval_s=telemetry_interval_s,
            tickets=self.scanner.snapshot if self.scanner is not None else None,
        )

    async def run(self) -> None:
        """Run every part until cancelled; then say "offline", disconnect and close the database."""
        config = self.config
        log.info(
            "agent starting robot=%s broker=%s database=%s",
            config.robot.id,
            config.cloud.mqtt_url,
            config.storage.database,
        )
        await self.link.start()
        if self.scanner is not None:
            self.scanner.camera.start()
        try:
            async with asyncio.TaskGroup() as parts:
                parts.create_task(self.sender.run(), name="sync sender")
                parts.create_task(self.downsync.run(), name="down-sync")
                parts.create_task(self.telemetry.run(), name="telemetry")
                if self.scanner is not None:
                    parts.create_task(self.scanner.run(), name="ticket scanner")
        finally:
            if self.scanner is not None:
                await asyncio.to_thread(self.scanner.camera.stop)
            await self.link.close()
            self.store.dispose()
            log.info(
                "agent stopped robot=%s acked_batches=%d resent_batches=%d",
                config.robot.id,
                self.sender.acked_batches,
                self.sender.resent_batches,
            )
