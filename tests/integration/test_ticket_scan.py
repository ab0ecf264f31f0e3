"""The ticket scanner in-process: one showing is one check, a live code redrawn while held up is the same
showing, and its counters (for telemetry) add up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.tickets import Verdict, live_code
from robot_agent.config import load_config
from robot_agent.store.database import open_store
from robot_agent.tickets import TicketDesk
from robot_agent.vision.camera import Camera
from robot_agent.vision.scan import Debouncer, TicketScanner
from tests.e2e.test_ticket_scanning import robot, ticket
from tests.support.qr_images import render_qr


def test_a_sighting_within_the_window_is_the_same_showing_and_restarts_it() -> None:
    debouncer = Debouncer(1.0)
    assert debouncer.new_showing("a", 0.0)
    assert not debouncer.new_showing("a", 0.9)
    assert not debouncer.new_showing("a", 1.8)  # held up: each sighting restarts the window
    assert debouncer.new_showing("b", 1.9)
    assert debouncer.new_showing("a", 3.0)  # put away for over a second, shown again
    for n in range(1_000):  # old keys are forgotten, recent ones kept
        debouncer.new_showing(f"k{n}", 10.0 + n * 0.01)
    assert not debouncer.new_showing("k999", 20.0)


async def test_a_live_code_redrawn_while_held_up_is_checked_once(tmp_path: Path) -> None:
    wallet = Ed25519PrivateKey.generate()
    ticket_id, token = ticket(holder_key=wallet.public_key().public_bytes_raw())
    now = dt.datetime.now(dt.UTC)
    frames = tmp_path / "frames"
    frames.mkdir()
    # The wallet redraws every second: three different live codes of one ticket, 10 frames each, at 20 fps.
    for n in range(30):
        code = live_code(token, wallet, now - dt.timedelta(seconds=3 - n // 10))
        assert cv2.imwrite(str(frames / f"f{n:03d}.png"), render_qr(code))
    assert cv2.imwrite(str(frames / "f999.png"), np.full((480, 640, 3), 228, np.uint8))
    config_path = robot(tmp_path, f'type = "folder"\npath = "{frames}"\nloop = false')
    config = load_config(config_path)
    store = open_store(config.storage.database)
    camera = Camera(config.camera)
    seen = []
    scanner = TicketScanner(
        camera, TicketDesk(store, config), 1.0, on_outcome=lambda outcome, frame: seen.append(outcome)
    )
    try:
        camera.start()
        await scanner.run()
    finally:
        camera.stop()
        store.dispose()
    assert [(o.ticket_id, o.verdict) for o in seen] == [(ticket_id, Verdict.VALID)]
    snapshot = scanner.snapshot()
    assert (snapshot["checks"], snapshot["valid"]) == (1, 1)
    assert snapshot["frames"] == 31 - snapshot["camera"]["dropped_frames"]
    assert snapshot["camera"]["ended"] is True
    assert 0 < snapshot["latency_p50_ms"] <= snapshot["latency_max_ms"] < 5_000
    assert str(ticket_id) not in str(snapshot)
