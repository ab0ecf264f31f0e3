"""`robot-agent run`: the agent's long-running process, its parts supervised, stopped together.

`Agent` does everything that can fail on a bad set-up (key, credentials, database, broker URL) when it is
built, so that `robot-agent run` refuses with one line before anything starts. `Agent.run()` then opens the
devices `[hardware]` names and runs every part under one `Supervisor` until it is cancelled (SIGTERM or
SIGINT): the sync sender, down-sync, telemetry, the broker link's and the camera's health, with `[tickets]
scan` the ticket scanner (QR codes to the ticket desk) and with `[vision] match_faces` the face watcher
(recognised passengers to the same desk), which share the camera through one fan-out, each at its own pace;
the hardware's watchers (MCU link, e-stop, card reader: robot_agent/devices.py); the behaviour with
passengers on those devices, told by the camera's readers what they see and each check's outcome
(robot_agent/behaviour/); and the local control API on `[api] socket` (robot_agent/api/). A part that fails is
reported and restarted with backoff and never takes the others down: no camera, the robot still sells and
syncs; no broker, it still checks tickets (its events wait in the outbox); no MCU link, the devices refuse
commands and the link is made again by itself.

`status` (RobotStatus) is the robot's one status object, `live` (LiveEvents) its live events: every status
change is also a live event. Others plug in here: `agent.supervisor.add(name, part)` before `run()` adds a
supervised part; `agent.card_taps.subscribe()` gives the card reader's taps (the local API's card login);
`agent.devices` and `agent.behaviour` are set once `run()` has opened the devices. Each check is a live
"ticket_checked" event (verdict, method, ticket id; never who), and INFO-and-above log lines "log" events
with the part they are about.

On cancellation every part stops; a ticket check in its worker thread finishes its transaction (asyncio.run
waits for its thread before the process exits); the devices are put in their safe state and closed; the
link says "offline" and the database is closed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any, Final

from hardware.factory import Devices, open_devices
from models.credentials import parse_credentials
from models.faces.pipeline import FacePipeline
from robot_agent.api.engineers import load_card_pepper
from robot_agent.api.faces import MatcherFaces
from robot_agent.api.logs import LiveLogHandler
from robot_agent.api.server import LocalApi, SyncLink
from robot_agent.behaviour.configured import open_behaviour
from robot_agent.behaviour.driver import BehaviourDriver
from robot_agent.clock import Clock
from robot_agent.config import RobotConfig
from robot_agent.devices import CardTaps, DeviceWatch
from robot_agent.errors import FacesError, RobotAgentError
from robot_agent.faces.arrivals import SealingSink, open_face_sink
from robot_agent.faces.configured import open_face_pipeline, open_matcher
from robot_agent.faces.matcher import Matcher
from robot_agent.identity import load_key_file
from robot_agent.live import LiveEvents
from robot_agent.loop_lag import LoopLag
from robot_agent.status import PartState, RobotStatus
from robot_agent.store.database import open_store
from robot_agent.supervisor import Supervisor
from robot_agent.sync.downsync import DownSync
from robot_agent.sync.mqtt import RobotLink
from robot_agent.sync.sender import Sender
from robot_agent.sync.telemetry import SyncReport, Telemetry
from robot_agent.tickets import CheckOutcome, TicketDesk
from robot_agent.vision.camera import Camera
from robot_agent.vision.faces import FaceWatcher
from robot_agent.vision.fanout import FrameFanout
from robot_agent.vision.scan import TicketScanner, camera_snapshot

log = logging.getLogger(__name__)

CAMERA_POLL_S: Final = 0.5


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

    def __init__(self, config: RobotConfig, *, telemetry_interval_s: float | None = None) -> None:
        self.config = config
        robot = config.robot.id
        self.status = RobotStatus(robot)
        self.live = LiveEvents()
        self.status.listen(self._status_changed)
        self.supervisor = Supervisor(self.status, self.live)
        self.card_taps = CardTaps()
        self.loop_lag = LoopLag()  # the event loop's lag, the status's "loop" (robot_agent/loop_lag.py)
        self.devices: Devices | None = None
        self._watch: DeviceWatch | None = None
        self._matcher: Matcher | None = None
        self._api_pipeline: FacePipeline | None = None
        self.behaviour: BehaviourDriver | None = None
        self._card_pepper: bytes | None = (
            None  # read when run() starts: a missing one is a warning, not a refusal
        )
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
        self.downsync.tasks_changed = self._tasks_arrived
        self.camera: Camera | None = None
        self.fanout: FrameFanout | None = None
        self.scanner: TicketScanner | None = None
        self.faces: FaceWatcher | None = None
        self.clock = clock
        self.desk = TicketDesk(self.store, config, clock)
        if config.tickets.scan or config.vision.match_faces:
            desk = self.desk
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
            interval_s=telemetry_interval_s
            if telemetry_interval_s is not None
            else cloud.telemetry_interval_s,
            tickets=self.vision_snapshot if self.camera is not None else None,
            health=self.health,
        )
        self._add_sources()
        self._add_parts()

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
        self._matcher = matcher
        try:  # the API's enrolments run beside the watcher: a pipeline of their own (not thread-safe)
            self._api_pipeline = open_face_pipeline(vision, threads=1)
        except FacesError as err:
            log.error("the local API's face actions are off: %s", err)
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

    # -- status ------------------------------------------------------------------------------------------

    def _status_changed(self, kind: str, data: dict[str, Any]) -> None:
        """Every status change ("part", "mcu", "estop") is a live event too."""
        self.live.publish(kind, data)

    def _add_sources(self) -> None:
        self.status.add_source("sync", self.sync_snapshot)
        self.status.add_source("loop", self.loop_lag.snapshot)
        self.status.add_source("assignment", lambda: self.config.assignment.model_dump(mode="json"))
        if self.camera is not None:
            self.status.add_source("vision", self.vision_snapshot)
        if self._matcher is not None:
            matcher = self._matcher
            self.status.add_source("faces", lambda: {"enrolled": len(matcher)})

    async def sync_snapshot(self) -> dict[str, Any]:
        """The status's "sync": backlog and oldest event's age, last ack, down-sync's counters."""
        report: SyncReport = await self.telemetry.report()
        return {
            "online": report.online,
            "backlog": report.backlog.events,
            "oldest_age_ms": report.backlog.oldest_age_ms,
            "in_flight_events": report.backlog.in_flight,
            "acked_batches": report.acked_batches,
            "resent_batches": report.resent_batches,
            "last_ack_ms": report.last_ack_ms,
            "applied_changes": report.applied_changes,
            "refused_changes": report.refused_changes,
        }

    async def health(self) -> dict[str, Any]:
        """What telemetry carries of the status: each part's health, the MCU link, the e-stop, loop lag."""
        snapshot = await self.status.snapshot()
        return {key: snapshot[key] for key in ("parts", "mcu", "estop", "loop")}

    # -- parts --------------------------------------------------------------------------------------------

    def _add_parts(self) -> None:
        add = self.supervisor.add
        add("loop lag", self.loop_lag.run)
        add("sync sender", self.sender.run)
        add("down-sync", self.downsync.run)
        add("telemetry", self.telemetry.run)
        add("broker link", self._broker_link)
        if self.fanout is not None:
            add("camera", self._camera)
            add("camera fan-out", self.fanout.run)
        if self.scanner is not None:
            add("ticket scanner", self.scanner.run)
        if self.faces is not None:
            add("face watcher", self.faces.run)

    async def _broker_link(self) -> None:
        """The broker link's health as a part: RobotLink reconnects by itself, so this only reports. Down is
        a fault (the robot works on offline, its events waiting in the outbox) after a first connect, or
        when the first does not come within a keep-alive."""
        link, name = self.link, "broker link"
        try:
            async with asyncio.timeout(self.config.cloud.keepalive_s):
                await link.wait_connected()
        except TimeoutError:
            self._fault(name, "the broker is unreachable: working offline, events wait in the outbox")
        while True:
            await link.wait_connected()
            if self.status.parts()[name].state is not PartState.RUNNING:
                self.status.part_changed(name, PartState.RUNNING)
                log.info("part %s back", name)
            await link.wait_disconnected()
            self._fault(name, "the broker link dropped: working offline, events wait in the outbox")

    async def _camera(self) -> None:
        """The camera's health as a part: its capture thread reopens a lost source by itself (and logs the
        outage), so this only reports it, polling its counters; returns when a file or folder ends."""
        assert self.camera is not None
        camera, name, failed = self.camera, "camera", False
        while True:
            stats = camera.stats()
            if stats.ended:
                return
            if not stats.connected and stats.last_error is not None and not failed:
                failed = True
                self._fault(name, f"camera source unavailable: {stats.last_error}")
            elif stats.connected and failed:
                failed = False
                self.status.part_changed(name, PartState.RUNNING)
                log.info("part %s back", name)
            await asyncio.sleep(CAMERA_POLL_S)

    def _tasks_arrived(self, tasks: list[dict[str, Any]]) -> None:
        """Tasks of this robot's sales that came down: each a live "order" event (waiting or ready, and the
        stock conflicts the cloud found with the sale), never who bought it."""
        for task in tasks:
            extra = task.get("additional_data")
            conflicts = extra.get("conflicts", []) if isinstance(extra, dict) else []
            self.live.publish(
                "order",
                {
                    "state": "ready" if task.get("is_ready") else "waiting",
                    "task_id": task.get("id"),
                    "purchase_id": task.get("purchase_id"),
                    "conflicts": conflicts,
                },
            )
            if conflicts:
                log.warning(
                    "the cloud found conflicts with purchase %s: %s",
                    task.get("purchase_id"),
                    "; ".join(str(c.get("detail", c)) if isinstance(c, dict) else str(c) for c in conflicts),
                )

    def _fault(self, part: str, error: str) -> None:
        """A part's trouble that the part itself rides out: the same report as a failure (status, WARNING,
        live "fault"), without a restart."""
        self.status.part_changed(part, PartState.FAILED, error)
        log.warning("part %s failed: %s", part, error)
        self.live.publish("fault", {"part": part, "error": error})

    async def _open_devices(self) -> Devices:
        hardware = self.config.hardware
        self._card_pepper = load_card_pepper(self.config.api.card_key_file)
        devices = await open_devices(hardware.backend, hardware.serial_url, hardware.baudrate)
        watch = DeviceWatch(devices, self.status, self.live, self.card_taps)
        self.supervisor.add("mcu link", watch.mcu_link)
        self.supervisor.add("e-stop", watch.estop)
        self.supervisor.add("card reader", watch.card_reader)
        self._watch = watch
        log.info("devices open backend=%s", hardware.backend)
        self._behave(devices)
        self.supervisor.add("local api", lambda: self._local_api(devices).run())
        return devices

    def _behave(self, devices: Devices) -> None:
        """The behaviour with passengers, on the devices: the camera's readers tell it what they see and
        hand it each check's outcome, which is also a live event."""
        driver = open_behaviour(self.config, devices, self.store, live=self.live, clock=self.clock)
        self.behaviour = driver

        def checked(outcome: CheckOutcome, frame: object = None) -> None:
            self.live.publish("ticket_checked", _check_event(outcome))
            driver.on_outcome(outcome, frame)

        def halted() -> bool:  # no ticket is used up while the gate cannot open
            return self.status.estop_pressed

        if self.scanner is not None:
            self.scanner.on_code, self.scanner.on_outcome = driver.code_shown, checked
            self.scanner.hold = halted
        if self.faces is not None:
            self.faces.on_sighting, self.faces.on_outcome = driver.face_seen, checked
            self.faces.hold = halted
        self.status.add_source("behaviour", driver.snapshot)
        self.supervisor.add("behaviour", driver.run)

    def _local_api(self, devices: Devices) -> LocalApi:
        """A new local API (each start reads its own card taps), as `[api]` configures it."""
        api = self.config.api
        faces = None
        if self._matcher is not None and self._api_pipeline is not None:
            faces = MatcherFaces(self._api_pipeline, self._matcher, frames=self.fanout)
        return LocalApi(
            socket_path=api.socket,
            status=self.status,
            live=self.live,
            store=self.store,
            devices=devices,
            tickets=self.desk,
            sync_now=self.sync_now,
            card_taps=aiter(self.card_taps.subscribe()),
            card_pepper=self._card_pepper,
            faces=faces,
            sync_link=self.sync_link,
            clock=self.clock,
            session_idle_s=api.session_idle_s,
            card_login_s=api.card_login_s,
        )

    def sync_link(self) -> SyncLink:
        """The local API's GET /sync: what the agent knows of its sync beyond the database."""
        return SyncLink(self.link.connected, self.sender.last_ack_ms, dict(self.downsync.applied_ms))

    async def sync_now(self) -> None:
        """The local API's "sync now": send the outbox at once and ask the cloud for what changed."""
        self.sender.wake()
        if self.link.connected:
            await self.downsync.ask()

    async def run(self) -> None:
        """Run every part until cancelled; then devices safe and closed, "offline", the database closed."""
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
        live_log = LiveLogHandler(self.live)  # INFO and above are live events too (others' WARNING and up)
        logging.getLogger().addHandler(live_log)
        try:
            self.devices = await self._open_devices()
            # Start-up's objects (modules, models, config) live as long as the agent: moved out of the
            # collector's sight, a full collection during a sync drain scans ~160,000 fewer objects and stops
            # the loop for milliseconds, not 90-290 ms (decisions §52).
            gc.collect()
            gc.freeze()
            await self.supervisor.run()
        finally:
            if self._watch is not None:
                await self._watch.safe_state()
                await self._watch.devices.close()
            if self.camera is not None:
                await asyncio.to_thread(self.camera.stop)
            if self.faces is not None:
                await asyncio.to_thread(self.faces.close)
            if self._api_pipeline is not None:
                self._api_pipeline.close()
            await self.link.close()
            logging.getLogger().removeHandler(live_log)
            self.store.dispose()
            log.info(
                "agent stopped robot=%s acked_batches=%d resent_batches=%d",
                config.robot.id,
                self.sender.acked_batches,
                self.sender.resent_batches,
            )


def _check_event(outcome: CheckOutcome) -> dict[str, Any]:
    """A check as a live event: the verdict and how, the ticket's id, never who (no user id)."""
    return {
        "verdict": outcome.verdict.value,
        "ok": outcome.ok,
        "method": outcome.method.value,
        "ticket_id": str(outcome.ticket_id) if outcome.ticket_id else None,
        "train_number": outcome.train_number,
        "reason": outcome.reason,
    }
