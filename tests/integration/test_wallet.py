"""Tickets bound to a passenger's wallet, on SQLite and PostgreSQL: issued through the Base API with a holder
key, verified by the cloud only as a fresh live code, and shown by `cloud-sync wallet show` as a process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from models.tickets import LIVE_PREFIX, decode_ticket
from tests.integration.test_base_api import DEPARTURE, new_ticket, new_user, robot_token, ticket_body, verify
from tests.support.cloud import Cloud

BIN = Path(sys.executable).parent


def cloud_sync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "cloud-sync"), *args], capture_output=True, text=True, timeout=60)


async def verify_on_train(cloud: Cloud, token: str) -> dict[str, Any]:
    robot = await robot_token(cloud)
    date = DEPARTURE.date().isoformat()
    return await verify(cloud, robot, token=token, train_number=742, date=date, timezone="Europe/Moscow")


def render_as_image(qr_text: str) -> np.ndarray:
    """The terminal QR (Unicode half blocks) drawn back into pixels, to read it as a camera would."""
    rows = qr_text.rstrip("\n").split("\n")
    cells = {" ": (0, 0), "█": (1, 1), "▀": (1, 0), "▄": (0, 1)}  # (top dark, bottom dark)
    width = max(len(row) for row in rows)
    image = np.full((2 * len(rows), width), 255, np.uint8)
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            top, bottom = cells[char]
            image[2 * y, x] = 0 if top else 255
            image[2 * y + 1, x] = 0 if bottom else 255
    # segno's compact output draws light modules as blocks on a dark terminal: dark is light here.
    image = 255 - image
    return cv2.resize(image, None, fx=6, fy=6, interpolation=cv2.INTER_NEAREST)


async def test_a_bound_ticket_verifies_only_as_the_wallets_fresh_live_code(
    cloud: Cloud, cloud_db_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "wallet" / "anna.pem"
    made = cloud_sync("wallet", "key", str(key_file))
    assert made.returncode == 0, made.stderr
    holder_key = made.stdout.strip()
    assert len(bytes.fromhex(holder_key)) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600

    ticket = await new_ticket(cloud, holder_key=holder_key)
    assert decode_ticket(ticket["token"]).claims.holder_key == bytes.fromhex(holder_key)
    bare = await verify_on_train(cloud, ticket["token"])
    assert (bare["ok"], bare["verdict"]) == (False, "holder_proof_missing")

    shown = await asyncio.to_thread(
        lambda: cloud_sync(
            "wallet", "show", ticket["id"], "--db", cloud_db_url, "--key", str(key_file), "--text"
        )
    )
    assert shown.returncode == 0, shown.stderr
    code = shown.stdout.strip()
    assert code.startswith(LIVE_PREFIX)
    live = await verify_on_train(cloud, code)
    assert live == {"ok": True, "verdict": "valid", "reason": live["reason"], "ticket_id": ticket["id"]}

    qr = await asyncio.to_thread(
        lambda: cloud_sync("wallet", "show", ticket["id"], "--db", cloud_db_url, "--key", str(key_file))
    )
    assert qr.returncode == 0, qr.stderr
    texts = cv2.QRCodeDetectorAruco().detectAndDecodeMulti(render_as_image(qr.stdout))[1]
    assert len(texts) == 1
    assert texts[0].startswith(LIVE_PREFIX)
    assert (await verify_on_train(cloud, texts[0]))["ok"]


async def test_wallet_show_refuses_a_missing_or_wrong_key_and_shows_an_unbound_ticket_as_its_token(
    cloud: Cloud, cloud_db_url: str, tmp_path: Path
) -> None:
    assert cloud_sync("wallet", "key", str(tmp_path / "a.pem")).returncode == 0
    other = tmp_path / "b.pem"
    assert cloud_sync("wallet", "key", str(other)).returncode == 0
    again = cloud_sync("wallet", "key", str(other))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    holder_key = cloud_sync("wallet", "key", str(tmp_path / "c.pem")).stdout.strip()
    bound = await new_ticket(cloud, holder_key=holder_key)
    unbound = await new_ticket(cloud)

    def show(*args: str) -> subprocess.CompletedProcess[str]:
        return cloud_sync("wallet", "show", *args, "--db", cloud_db_url, "--text")

    no_key = await asyncio.to_thread(lambda: show(bound["id"]))
    assert no_key.returncode == 1
    assert "--key" in no_key.stderr
    wrong = await asyncio.to_thread(lambda: show(bound["id"], "--key", str(other)))
    assert wrong.returncode == 1
    assert "not the key this ticket is bound to" in wrong.stderr
    plain = await asyncio.to_thread(lambda: show(unbound["id"]))
    assert (plain.returncode, plain.stdout.strip()) == (0, unbound["token"])
    missing = await asyncio.to_thread(lambda: show("00000000-0000-4000-8000-000000000000"))
    assert missing.returncode == 1
    assert "no token was issued" in missing.stderr


@pytest.mark.parametrize("holder_key", ["ab" * 31, "AB" * 32, "zz" * 32, ""])
async def test_a_bad_holder_key_is_422(cloud: Cloud, holder_key: str) -> None:
    user = await new_user(cloud)
    body = ticket_body(user["id"], holder_key=holder_key)
    response = await cloud.client.post("/base_api/admin/ticket", headers=cloud.admin, json=body)
    assert response.status == 422
    assert "holder_key" in await response.text()


async def test_watch_redraws_a_fresh_code_each_period(
    cloud: Cloud, cloud_db_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "wallet.pem"
    holder_key = cloud_sync("wallet", "key", str(key_file)).stdout.strip()
    ticket = await new_ticket(cloud, holder_key=holder_key)
    command = ["wallet", "show", ticket["id"], "--db", cloud_db_url, "--key", str(key_file), "--text"]
    watcher = await asyncio.create_subprocess_exec(
        str(BIN / "cloud-sync"), *command, "--watch", "1", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert watcher.stdout is not None
        codes: list[str] = []
        while len(set(codes)) < 2:
            line = await asyncio.wait_for(watcher.stdout.readline(), 30)
            assert line, "wallet show --watch stopped drawing"
            codes.append(line.decode().replace("\x1b[2J\x1b[H", "").strip())
    finally:
        watcher.terminate()
        await watcher.wait()
    for code in set(codes):
        assert (await verify_on_train(cloud, code))["ok"]
