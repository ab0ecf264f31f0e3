"""`robot-agent run`: the agent's long-running process, its parts started together and stopped together.

`Agent` does everything that can fail on a bad set-up (key, credentials, database, broker URL) when it is
built, so that `robot-agent run` refuses with one line before anything starts. `Agent.run()` then runs every
part as one task of one TaskGroup until it is cancelled (SIGTERM or SIGINT): the sync sender, down-sync,
telemetry, with `[tickets] scan` the ticket scanner (QR codes to the ticket desk) and with `[vision]
match_faces` the face watcher (recognised passengers to the same desk); the two share the camera through one
fan-out, each at its own pace. Adding a part (the hardware) is one more task there. Face matching that
cannot start (no models, no face key) is one ERROR and the agent runs without it. The link to the broker
connects in the background and reconnects for ever: a broker that is down or refuses the robot leaves the
agent working offline, its events waiting in the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from models.credentials import parse_credentials
from robot_agent.clock import Clock
from robot_agent.config import RobotConfig
from robot_agent.errors import FacesError, RobotAgentError
from robot_agent.faces.arrivals import SealingSink, open_face_sink
from robot_agent.faces.configured import open_face_pipeline, open_matcher
from robot_agent.identity import load_key_file
from robot_agent.store.database import open_store
from robot_agent.sync import telemetry
from robot_agent.sync.downsync import DownSync
from robot_agent.sync.mqtt import RobotLink
from robot_agent.sync.sender import Sender
from robot_agent.sync.telemetry import Telemetry
from robot_agent.tickets import TicketDesk
from robot_agent.vision.camera import Camera
from robot_agent.vision.faces import FaceWatcher
from robot_agent.vision.fanout import FrameFanout
from robot_agent.vision.scan import TicketScanner, camera_snapshot

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
        self.downsync = DownSync(self.link, self.store, faces=self._face_sink())
        self.camera: Camera | None = None
        self.fanout: FrameFanout | None = None
        self.scanner: TicketScanner | None = None
        self.faces: FaceWatcher | None = None
        if config.tickets.scan or config.vision.match_faces:
            desk = TicketDesk(self.store, config, clock)
            self.camera = Camera(config.camera)
            self.fanout = FrameFanout(self.camera)
            if config.tickets.scan:
                frames = self.fanout.subscribe("ticket scanner")
                self.scanner = TicketScanner(self.camera, desk, config.tickets.debounce_s, frames=frames)
            if config.vision.match_faces:
                self.faces = self._face_watcher(desk)
            if self.scanner is None and self.faces is None:
                self.camera = self.fanout = None  # nothing would read it

        self.telemetry = Telemetry(
            robot,
            self.link,
            self.store,
            self.sender,
            self.downsync,
            clock,
            interval_s=telemetry_interval_s,
            tickets=self.vision_snapshot if self.camera is not None else None,
        )

    def _face_watcher(self, desk: TicketDesk) -> FaceWatcher | None:
        """The face watcher `[vision]` configures, or None, after one ERROR naming what to run, when its
        models or face key are missing: tickets by QR work on without it."""
        assert self.fanout is not None
        vision = self.config.vision
        try:
            matcher = open_matcher(self.store, vision)
            # One intra-op thread: the QR scanner's decoding keeps a core of its own (decisions §41).
            pipeline = open_face_pipeline(vision, threads=1)
        except FacesError as err:
            log.error("face matching is off: %s", err)
            return None
        log.info(
            "face matching on detector=%s embedder=%s enrolled=%d",
            vision.detector,
            vision.embedder,
            len(matcher),
        )
        frames = self.fanout.subscribe("face watcher")
        watcher = FaceWatcher(frames, pipeline, matcher, desk, self.config.tickets.debounce_s)
        self.downsync.faces_changed = watcher.refresh  # faces down-sync brings are matched at once
        return watcher

    def _face_sink(self) -> SealingSink | None:
        """Where down-sync's faces go: sealed into the `faces` table under the face key, kept whether or not
        this robot matches faces now, so that turning `match_faces` on needs no new sync. None, and down-sync
        drops them saying so, without a face key; a key file that is there but bad is one ERROR: tickets go
        on."""
        try:
            return open_face_sink(self.config.vision.face_key_file)
        except FacesError as err:
            log.error("faces from the cloud are not kept: %s", err)
            return None

    def vision_snapshot(self) -> dict[str, Any]:
        """Telemetry's `tickets`: the camera's counters, the QR scanner's and the face watcher's."""
        assert self.camera is not None
        shown: dict[str, Any] = (
            self.scanner.snapshot() if self.scanner else {"camera": camera_snapshot(self.camera)}
        )
        if self.faces is not None:
            shown["faces"] = self.faces.snapshot()
        return shown

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
        if self.camera is not None:
            self.camera.start()
        try:
            async with asyncio.TaskGroup() as parts:
                parts.create_task(self.sender.run(), name="sync sender")
                parts.create_task(self.downsync.run(), name="down-sync")
                parts.create_task(self.telemetry.run(), name="telemetry")
                if self.fanout is not None:
                    parts.create_task(self.fanout.run(), name="camera fan-out")
                if self.scanner is not None:
                    parts.create_task(self.scanner.run(), name="ticket scanner")
                if self.faces is not None:
                    parts.create_task(self.faces.run(), name="face watcher")
        finally:
            if self.camera is not None:
                await asyncio.to_thread(self.camera.stop)
            if self.faces is not None:
                await asyncio.to_thread(self.faces.close)
            await self.link.close()
            self.store.dispose()
            log.info(
                "agent stopped robot=%s acked_batches=%d resent_batches=%d",
                config.robot.id,
                self.sender.acked_batches,
                self.sender.resent_batches,
            )
