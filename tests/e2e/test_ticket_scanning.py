"""Tickets checked by the robot as processes: `robot-agent verify-ticket` (a token, an image) and
`robot-agent run` reading QR codes from a camera (a folder of real PNG frames), offline, with the checks
recorded in the robot's store and outbox."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import cbor2
import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud_sync.desks.signing import trust_document
from models.tickets import TicketClaims, TrustedKey, encode_ticket
from robot_agent.identity import create_key_file
from robot_agent.store.database import open_store
from robot_agent.store.tables import ROBOT_METADATA
from tests.support.ports import free_port, wait_until
from tests.support.qr_images import render_qr

BIN = Path(sys.executable).parent
SIGNER = Ed25519PrivateKey.generate()
MOSCOW = dt.timezone(dt.timedelta(hours=3))


def ticket(train: int = 742, **changes: Any) -> tuple[uuid.UUID, str]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    today = dt.datetime.now(MOSCOW).replace(hour=12, minute=0, second=0, microsecond=0)
    claims = TicketClaims(
        ticket_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        train_number=train,
        wagon_number=3,
        place_number=12,
        date=today.astimezone(dt.UTC),
        station_id="2000000",
        destination_id="2004000",
        start_date=today.astimezone(dt.UTC),
        code="Q7",
        issued_at=now - dt.timedelta(hours=1),
        not_before=now - dt.timedelta(hours=1),
        expires_at=now + dt.timedelta(days=2),
        **changes,
    )
    return claims.ticket_id, encode_ticket(claims, SIGNER)


def robot(directory: Path, camera: str = 'type = "device"\ndevice = "/dev/video99"') -> Path:
    """A robot.toml with its trust list from provisioning (trust.json) and no broker to talk to."""
    create_key_file(directory / "robot.key")
    entry = TrustedKey.from_public_key(
        SIGNER.public_key().public_bytes_raw(), valid_from=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    )
    (directory / "trust.json").write_text(trust_document([entry]).model_dump_json())
    path = directory / "robot.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [robot]
            id = "{uuid.uuid4()}"
            key_file = "robot.key"
            [assignment]
            train_number = 742
            timezone = "Europe/Moscow"
            [cloud]
            mqtt_url = "mqtt://127.0.0.1:{free_port()}"
            keepalive_s = 5
            [storage]
            database = "robot.db"
            [tickets]
            trust_file = "trust.json"
            debounce_s = 0.5
            [camera]
            width = 640
            height = 480
            fps = 20.0
            [hardware]
            backend = "simulated"
            """
        )
        + f"[camera.source]\n{camera}\n"
    )
    return path


def verify(config: Path, *args: str) -> tuple[int, Any, str]:
    done = subprocess.run(
        [str(BIN / "robot-agent"), "--config", str(config), "verify-ticket", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout else None, done.stderr


def checks(database: Path) -> list[dict[str, Any]]:
    store = open_store(database)
    try:
        outbox = ROBOT_METADATA.tables["outbox"]
        with store.connect() as conn:
            rows = conn.execute(select(outbox.c.data).where(outbox.c.type == "ticket.checked")).all()
    finally:
        store.dispose()
    return [cbor2.loads(row.data) for row in rows]


def test_verify_ticket_prints_the_verdict_and_exits_0_only_for_a_valid_ticket(tmp_path: Path) -> None:
    config = robot(tmp_path)
    ticket_id, token = ticket()
    code, shown, _ = verify(config, token)
    assert code == 0
    assert (shown["ok"], shown["verdict"], shown["ticket_id"], shown["method"]) == (
        True,
        "valid",
        str(ticket_id),
        "token",
    )
    code, again, _ = verify(config, token)
    assert code == 1
    assert again["verdict"] == "already_used"
    assert again["reason"].startswith("already checked by this robot at ")
    code, wrong, _ = verify(config, ticket(train=743)[1])
    assert (code, wrong["verdict"]) == (1, "wrong_train")
    code, garbage, _ = verify(config, "RB1:not base45!")
    assert (code, garbage["verdict"], garbage["ticket_id"]) == (1, "bad_base45", None)
    assert [c["verdict"] for c in checks(tmp_path / "robot.db")] == [
        "valid",
        "already_used",
        "wrong_train",
        "bad_base45",
    ]


def test_verify_ticket_reads_the_code_from_an_image(tmp_path: Path) -> None:
    config = robot(tmp_path)
    ticket_id, token = ticket()
    photo = tmp_path / "ticket.jpg"
    assert cv2.imwrite(str(photo), render_qr(token), [cv2.IMWRITE_JPEG_QUALITY, 80])
    code, shown, _ = verify(config, "--image", str(photo))
    assert (code, shown["verdict"], shown["ticket_id"], shown["method"]) == (
        0,
        "valid",
        str(ticket_id),
        "image",
    )

    two = tmp_path / "two.png"
    left, right = render_qr(ticket()[1]), render_qr(ticket(train=743)[1])
    assert cv2.imwrite(str(two), np.hstack([left, right]))
    code, both, _ = verify(config, "--image", str(two))
    assert code == 1
    assert sorted(item["verdict"] for item in both) == ["valid", "wrong_train"]

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    code, shown, error = verify(config, "--image", str(text))
    assert (code, shown) == (1, None)
    assert "is not an image" in error
    blank = tmp_path / "blank.png"
    assert cv2.imwrite(str(blank), np.full((480, 640, 3), 230, np.uint8))
    code, shown, error = verify(config, "--image", str(blank))
    assert (code, shown) == (1, None)
    assert "no QR code found" in error
    code, shown, error = verify(config, "--image", str(tmp_path / "missing.png"))
    assert (code, shown) == (1, None)
    assert "cannot read" in error


def test_the_running_agent_checks_each_showing_at_the_camera_once(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    first_id, first = ticket()
    second_id, second = ticket()
    blank = np.full((480, 640, 3), 228, np.uint8)
    # 20 fps: the first ticket held up for 0.5 s, 1.5 s of nothing, shown again, then the second ticket.
    sequence = [render_qr(first)] * 10 + [blank] * 30 + [render_qr(first)] * 10 + [render_qr(second)] * 10
    for n, image in enumerate(sequence):
        assert cv2.imwrite(str(frames / f"frame_{n:03d}.png"), image)
    config = robot(tmp_path, f'type = "folder"\npath = "{frames}"\nloop = false')
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        agent = subprocess.Popen(
            [str(BIN / "robot-agent"), "--config", str(config), "run"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        # Every frame played, every showing checked: the folder source ends and the scanner says so.
        wait_until(lambda: "ticket scanning stops" in log.read_text(), 60, "the camera's folder to end")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    output = log.read_text()
    assert agent.returncode == 0, output
    recorded = checks(tmp_path / "robot.db")
    assert [(c["ticket_id"], c["verdict"], c["method"]) for c in recorded] == [
        (first_id, "valid", "camera"),
        (first_id, "already_used", "camera"),
        (second_id, "valid", "camera"),
    ]
    assert "Traceback" not in output
