"""The face watcher in-process, on set-up's models and real photos: a recognised passenger's ticket is checked
once per showing with method `face`, strangers and passengers without a ticket here record nothing, a face
enrolled beside the running watcher is seen at its next refresh; the QR scanner and the watcher share one
camera, each getting frames and the QR checks going on while a face frame is being processed; an agent
whose face models or key are missing says so once and checks tickets by QR; and faces followed across a
video's frames are embedded a fraction as often with the same checks, their carried name replaced at once
by a fresh embedding's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import Engine

from models.faces.choice import PipelineChoice
from models.faces.detect import DetectedFace
from models.faces.identify import Identification
from models.faces.identify import Verdict as Match
from models.faces.image import BgrImage
from models.faces.pipeline import Enrolled, FacePipeline
from models.faces.track import FaceTracker
from models.tickets import Verdict
from robot_agent.config import RobotConfig, load_config
from robot_agent.faces.key import create_face_key, load_face_key
from robot_agent.faces.matcher import Matcher
from robot_agent.runtime import Agent
from robot_agent.store.database import open_store
from robot_agent.tickets import CheckMethod, CheckOutcome, TicketDesk
from robot_agent.vision.camera import Camera, Frame
from robot_agent.vision.faces import FaceNamer, FaceWatcher
from robot_agent.vision.fanout import FrameFanout, Subscription
from robot_agent.vision.scan import TicketScanner
from tests.e2e.test_ticket_scanning import robot, ticket
from tests.integration.test_ticket_desk import events, held
from tests.support.face_files import MODELS_DIR, face_photo, model_bytes
from tests.support.face_frames import drifting, face_and_code_frame, portrait_frame, two_people_frame
from tests.support.qr_images import render_qr

OBAMA = uuid.UUID(int=0x0B)
CHOICE = PipelineChoice()


@pytest.fixture(scope="module")
def pipeline() -> Iterator[FacePipeline]:
    with CHOICE.build(model_bytes) as made:
        yield made


@pytest.fixture(scope="module")
def obama(pipeline: FacePipeline) -> NDArray[np.float32]:
    enrolled = pipeline.enrol_image(face_photo("obama.jpg"))
    assert isinstance(enrolled, Enrolled), enrolled
    return enrolled.embedding


class Robot:
    """A robot's folder: robot.toml (a folder camera), its store, face key and matcher."""

    def __init__(self, directory: Path, camera: str = 'type = "device"\ndevice = "/dev/video99"') -> None:
        self.config: RobotConfig = load_config(robot(directory, camera))
        self.store: Engine = open_store(self.config.storage.database)
        create_face_key(directory / "faces.key")
        self.matcher = Matcher(
            self.store, load_face_key(directory / "faces.key"), CHOICE.spec, directory / "faces.hnsw"
        )
        self.desk = TicketDesk(self.store, self.config)


class Kept(FacePipeline):
    """The module's pipeline under a watcher that must not close it."""

    def __init__(self, real: FacePipeline) -> None:
        super().__init__(real.detector, real.embedder, upright_passes=real.upright_passes)

    def close(self) -> None:
        pass


def frame(image: BgrImage, seq: int, at_s: float) -> Frame:
    return Frame(image, seq, int(at_s * 1e9), dt.datetime.now(dt.UTC), "test")


async def test_a_recognised_passenger_is_checked_once_a_showing_and_strangers_record_nothing(
    tmp_path: Path, pipeline: FacePipeline, obama: NDArray[np.float32], caplog: pytest.LogCaptureFixture
) -> None:
    bot = Robot(tmp_path)
    now = [0.0]
    sightings: list[uuid.UUID | None] = []
    watcher = FaceWatcher(
        Subscription("test"),
        Kept(pipeline),
        bot.matcher,
        bot.desk,
        3.0,
        refresh_s=30.0,
        clock=lambda: now[0],
        on_sighting=sightings.append,
    )
    caplog.set_level(logging.DEBUG)
    passenger, stranger = portrait_frame("obama2.jpg"), portrait_frame("biden.jpg")
    # Nobody enrolled yet: a face is only counted.
    assert await watcher.watch(frame(passenger, 1, 0.0)) == []
    # Enrolled beside the running watcher (as `robot-agent faces enroll` would), with no ticket here yet:
    # seen at the next refresh, and nothing is recorded.
    Matcher(bot.store, bot.matcher.key, CHOICE.spec, tmp_path / "faces.hnsw").enrol(OBAMA, [obama])
    assert await watcher.watch(frame(passenger, 2, 1.0)) == []  # not refreshed yet: still unknown
    now[0] = 31.0
    assert await watcher.watch(frame(passenger, 3, 5.0)) == []  # known now; no ticket on this train here
    assert (watcher.stats.matched, watcher.stats.no_ticket, len(bot.matcher)) == (1, 1, 1)

    ticket_id = held(bot.store, ticket()[1], user_id=OBAMA)
    # Held (the e-stop pressed): nobody is checked, and the showing is not counted.
    watcher.hold = lambda: True
    assert await watcher.watch(frame(passenger, 4, 8.5)) == []
    assert watcher.held == 1
    watcher.hold = None
    [first] = await watcher.watch(frame(passenger, 4, 10.0))
    assert (first.ticket_id, first.verdict, first.method) == (ticket_id, Verdict.VALID, CheckMethod.FACE)
    assert await watcher.watch(frame(passenger, 5, 11.0)) == []  # the same showing
    assert await watcher.watch(frame(stranger, 6, 12.0)) == []
    [again] = await watcher.watch(frame(passenger, 7, 20.0))  # a new showing: the ledger answers
    assert again.verdict is Verdict.ALREADY_USED

    assert [(e["verdict"], e["method"]) for e in events(bot.store)] == [
        ("valid", "face"),
        ("already_used", "face"),
    ]
    # What the behaviour hears: someone in view, and the passenger's id at each new showing, before its check.
    assert sightings == [None, None, OBAMA, None, OBAMA, None, None, OBAMA]  # held: someone, nobody named
    shown = watcher.snapshot()
    assert {
        k: shown[k] for k in ("frames", "faces", "matched", "unknown", "checks", "valid", "no_ticket")
    } == {
        "frames": 8,
        "faces": 8,
        "matched": 5,  # the held frame's too: seen, named, not checked
        "unknown": 3,
        "checks": 2,
        "valid": 1,
        "no_ticket": 1,
    }
    assert shown["latency_p50_ms"] is not None
    # The watcher's and the desk's lines (the matcher's enrolment, the CLI's work, names whom it enrolled).
    watched = [
        r.getMessage()
        for r in caplog.records
        if r.name in ("robot_agent.vision.faces", "robot_agent.tickets")
    ]
    assert len(watched) == 6
    assert not [line for line in watched if str(OBAMA) in line]
    assert str(OBAMA) not in str(shown)
    bot.store.dispose()


class Gated(Kept):
    """Holds the watcher's first frame inside `locate()` (its detection) until the QR scanner has checked
    `checks` tickets: a watcher that starved the scanner (one slot, one thread) would never let go."""

    def __init__(self, real: FacePipeline, checks: int) -> None:
        super().__init__(real)
        self.checks = checks
        self.outcomes: list[CheckOutcome] = []
        self.qr_while_held = 0
        self._open = threading.Event()

    def scanned(self, outcome: CheckOutcome, frame: Frame) -> None:
        self.outcomes.append(outcome)
        if not self._open.is_set():
            self.qr_while_held += 1
            if len(self.outcomes) >= self.checks:
                self._open.set()

    def locate(self, image: BgrImage) -> list[DetectedFace]:
        assert self._open.wait(60), "the QR scanner checked nothing while a face frame was being processed"
        return super().locate(image)


async def test_the_qr_scanner_and_the_face_watcher_share_the_camera_without_starving_each_other(
    tmp_path: Path, pipeline: FacePipeline, obama: NDArray[np.float32]
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    tickets = [ticket() for _ in range(10)]
    # 20 fps, 2 s: ten tickets held up in turn (4 frames each), the passenger in view all along.
    for n in range(40):
        assert cv2.imwrite(
            str(folder / f"f{n:03d}.png"), face_and_code_frame("obama2.jpg", tickets[n // 4][1])
        )
    bot = Robot(tmp_path, f'type = "folder"\npath = "{folder}"\nloop = false')
    bot.matcher.enrol(OBAMA, [obama])
    face_ticket = held(bot.store, ticket()[1], user_id=OBAMA)
    camera = Camera(bot.config.camera)
    fanout = FrameFanout(camera)
    gated = Gated(pipeline, checks=3)
    scanner = TicketScanner(camera, bot.desk, 3.0, frames=fanout.subscribe("qr"), on_outcome=gated.scanned)
    seen: list[CheckOutcome] = []
    faces = fanout.subscribe("faces")
    watcher = FaceWatcher(faces, gated, bot.matcher, bot.desk, 3.0, on_outcome=lambda o, f: seen.append(o))
    camera.start()
    try:
        async with asyncio.TaskGroup() as parts:
            for part in (fanout.run(), scanner.run(), watcher.run()):
                parts.create_task(part)
    finally:
        await asyncio.to_thread(camera.stop)
        await asyncio.to_thread(watcher.close)
        bot.store.dispose()

    # The scanner went on checking while the watcher's frame was held, and both saw frames.
    assert gated.qr_while_held >= 3
    shown = {ticket_id for ticket_id, _ in tickets}
    assert all(o.ticket_id in shown and o.verdict is Verdict.VALID for o in gated.outcomes)
    assert 3 <= scanner.stats.checks == len(gated.outcomes) <= 10
    assert scanner.stats.frames >= 3
    assert watcher.stats.frames >= 1
    # The held watcher skipped the frames it missed instead of queueing them; its one showing was checked.
    assert faces.skipped >= 1
    assert (seen[0].ticket_id, seen[0].verdict, seen[0].method) == (
        face_ticket,
        Verdict.VALID,
        CheckMethod.FACE,
    )
    assert all(o.verdict is Verdict.ALREADY_USED for o in seen[1:])


def test_an_agent_without_face_models_or_key_says_so_once_and_checks_tickets_by_qr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    path = robot(tmp_path)
    base = path.read_text()
    create_face_key(tmp_path / "faces.key")
    cases = [("faces.key", empty, "models fetch"), ("none.key", MODELS_DIR, "keys init")]
    for key, models, remedy in cases:
        path.write_text(
            f'{base}[vision]\nmatch_faces = true\nface_key_file = "{key}"\nmodels_dir = "{models}"\n'
        )
        caplog.clear()
        agent = Agent(load_config(path))
        try:
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1, caplog.text
            assert remedy in errors[0].getMessage()
            assert agent.faces is None
            assert agent.scanner is not None
            _, token = ticket()
            [outcome] = asyncio.run(agent.scanner.scan(frame(render_qr(token), 1, 0.0)))
            assert outcome.ok
            assert "faces" not in agent.vision_snapshot()
        finally:
            agent.store.dispose()


async def test_faces_followed_across_frames_are_embedded_less_often_and_checked_the_same(
    tmp_path: Path, pipeline: FacePipeline, obama: NDArray[np.float32]
) -> None:
    """Obama (a passenger with a ticket here) and Biden (a stranger) side by side, drifting a few pixels a
    frame at 15 frames/s for 2 s, out of view for 4 s, back for 1 s; the same video through a watcher whose
    tracker never keeps a name (every face embedded in every frame, as before tracking): the same checks and
    the same counts of faces, matched and unknown, with a fraction of the embeddings."""
    both = two_people_frame("obama2.jpg", "biden.jpg")
    video = [(drifting(both, n), n / 15) for n in range(30)] + [
        (drifting(both, n), 6 + n / 15) for n in range(15)
    ]
    never_kept: FaceTracker[uuid.UUID] = FaceTracker(reembed_s=0.0, unknown_reembed_s=0.0, max_reembeds=2)
    runs: dict[str, tuple[list[Verdict], dict[str, Any]]] = {}
    for name, tracker in (("tracked", None), ("every face", never_kept)):
        (tmp_path / name).mkdir()
        bot = Robot(tmp_path / name)
        bot.matcher.enrol(OBAMA, [obama])
        held(bot.store, ticket()[1], user_id=OBAMA)
        watcher = FaceWatcher(Subscription("test"), Kept(pipeline), bot.matcher, bot.desk, 3.0)
        if tracker is not None:
            watcher.namer.tracker = tracker
        verdicts = []
        for n, (image, at_s) in enumerate(video):
            verdicts += [outcome.verdict for outcome in await watcher.watch(frame(image, n, at_s))]
        runs[name] = verdicts, watcher.snapshot()
        bot.store.dispose()

    (tracked, shown), (baseline, every) = runs["tracked"], runs["every face"]
    assert tracked == baseline == [Verdict.VALID, Verdict.ALREADY_USED]
    counted = ("frames", "faces", "matched", "unknown", "checks", "valid", "no_ticket")
    assert {k: shown[k] for k in counted} == {k: every[k] for k in counted}
    assert (shown["faces"], shown["matched"], shown["unknown"]) == (90, 45, 45)
    assert (every["embedded_faces"], every["tracked_faces"]) == (90, 0)
    # Each face when it appears; then Obama (known) after 1 s, Biden (unknown) every 0.3 s (every 5th frame;
    # the two due in the same frame are embedded one a frame):
    # 2 + 6 in the first showing, 1 + 3 in the second.
    assert (shown["embedded_faces"], shown["tracked_faces"]) == (12, 78)


def test_a_followed_face_keeps_its_name_until_due_and_a_fresh_embedding_replaces_it_at_once(
    pipeline: FacePipeline,
) -> None:
    """The watcher's per-frame path on a real face, 15 frames/s, with an identification that names Obama the
    first time and nobody after (as when someone else has stepped into his place): the name is carried,
    marked not fresh, until the track is due (1 s), then the fresh answer replaces it in that frame."""
    answers = [
        Identification(Match.MATCH, OBAMA, 0.2, math.inf),
        Identification(Match.TOO_FAR, None, 0.9, math.inf),
    ]
    asked: list[int] = []

    def identify(vector: NDArray[np.float32]) -> Identification[uuid.UUID]:
        asked.append(len(asked))
        return answers[min(len(asked) - 1, 1)]

    namer = FaceNamer(Kept(pipeline), identify)
    face = portrait_frame("obama2.jpg")
    seen = [namer.name(drifting(face, n), n / 15) for n in range(18)]
    assert all(len(sightings) == 1 for sightings in seen)
    named = [(s.identity, s.fresh) for [s] in seen]
    assert named == [(OBAMA, True)] + [(OBAMA, False)] * 14 + [(None, True)] + [(None, False)] * 2
    assert len(asked) == 2


async def test_a_change_of_the_enrolled_faces_ends_every_track(
    tmp_path: Path, pipeline: FacePipeline, obama: NDArray[np.float32]
) -> None:
    """A face followed as unknown is embedded afresh in the first frame after the matcher's faces changed,
    not 0.3 s later: no name made against the old faces is carried past a refresh."""
    bot = Robot(tmp_path)
    watcher = FaceWatcher(Subscription("test"), Kept(pipeline), bot.matcher, bot.desk, 3.0)
    face = portrait_frame("obama2.jpg")
    await watcher.watch(frame(drifting(face, 0), 0, 0.0))
    await watcher.watch(frame(drifting(face, 1), 1, 1 / 15))
    assert (watcher.stats.embedded_faces, watcher.stats.tracked_faces, watcher.stats.unknown) == (1, 1, 2)
    # Enrolled by another matcher on the same database (down-sync, `faces enroll`), then the refresh hook.
    Matcher(bot.store, bot.matcher.key, CHOICE.spec, tmp_path / "other.hnsw").enrol(OBAMA, [obama])
    watcher.refresh()
    await watcher.watch(frame(drifting(face, 2), 2, 2 / 15))
    assert (watcher.stats.embedded_faces, watcher.stats.matched, watcher.stats.no_ticket) == (2, 1, 1)
    bot.store.dispose()
