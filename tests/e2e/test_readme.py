"""The README's shell blocks, run with bash as they are written (pasted whole), in a fresh folder holding a
copy of the example robot.toml and a link to the environment. Only ports are substituted (free ones for 8080
and 1883), so a README that drifts from the programs fails here."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from robot_agent.config import load_config
from tests.support.http import request
from tests.support.ports import accepts_connections, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROBOT_ID = "6f1c1a9e-3d2b-4f0e-9a51-7a0b5f3c2d10"


def readme_block(after: str) -> str:
    """The first ```sh block of README.md after the line holding `after`."""
    text = (ROOT / "README.md").read_text()
    start = text.index(after)
    match = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M).search(text, start)
    assert match is not None, f"no sh block after {after!r} in README.md"
    return match[1]


def substitute(block: str, replacements: dict[str, str]) -> str:
    """`block` with each default (a port, an address) replaced; each must be there."""
    for default, replacement in replacements.items():
        assert default in block, f"{default} is not in the README block"
        block = block.replace(default, replacement)
    return block


@pytest.fixture
def folder() -> Iterator[Path]:
    """A fresh folder as a checkout looks to the README: robot.toml (the example) and .venv. Made in /tmp,
    mode 0755 like a checkout, not in pytest's 0700 folders: Mosquitto started by root switches to user
    mosquitto, who must reach the files broker-config writes."""
    path = Path(tempfile.mkdtemp(prefix="railbot-readme-"))
    path.chmod(0o755)
    (path / ".venv").symlink_to(BIN.parent)
    (path / "robot.toml").write_text((ROOT / "robot.toml").read_text())
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sessions() -> Iterator[list[int]]:
    """Process groups a test starts (bash and what it left in the background); all ended afterwards."""
    started: list[int] = []
    yield started
    for group in started:
        end_group(group)


def end_group(group: int) -> None:
    """SIGTERM every process of the group, and wait until none is left (SIGKILL after 20 s)."""
    with_signal(group, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while with_signal(group, 0):
        if time.monotonic() > deadline:
            with_signal(group, signal.SIGKILL)
        time.sleep(0.05)


def with_signal(group: int, sig: int) -> bool:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def run_block(block: str, cwd: Path, sessions: list[int]) -> tuple[str, str]:
    """Run `block` with bash in its own process group (what it starts in the background stays in it); its
    stdout and stderr once bash has finished (block.out and block.log, which background processes go on
    writing to)."""
    with (cwd / "block.out").open("wb") as out, (cwd / "block.log").open("wb") as err:
        bash = subprocess.Popen(
            ["bash", "-c", block], cwd=cwd, stdout=out, stderr=err, start_new_session=True
        )
    sessions.append(bash.pid)
    bash.wait(timeout=120)
    return (cwd / "block.out").read_text(), (cwd / "block.log").read_text()


def test_the_first_cloud_session_works_pasted_whole(folder: Path, sessions: list[int]) -> None:
    port = free_port()
    block = substitute(readme_block("A first session with the cloud:"), {"8080": str(port)})
    out, err = run_block(block, folder, sessions)
    last = out.strip().splitlines()[-1]
    assert last.startswith("{"), f"the curl's answer is not the store:\n{out}{err}"
    store = json.loads(last)
    assert (store["name"], store["store_type"]) == ("Buffet", "SHOP")
    assert accepts_connections("127.0.0.1", port), "serve is still running"


def robot_trusts(database: Path, kid: str) -> bool:
    if not database.exists():
        return False
    with sqlite3.connect(database) as db:
        try:
            rows = db.execute("SELECT 1 FROM signing_keys WHERE kid = ?", (kid,)).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return False
    db.close()
    return bool(rows)


def test_the_readme_provisions_a_robot_that_syncs(folder: Path, sessions: list[int]) -> None:
    http, mqtt = free_port(), free_port()
    toml = folder / "robot.toml"
    broker = {"127.0.0.1:1883": f"127.0.0.1:{mqtt}"}
    toml.write_text(substitute(toml.read_text(), broker))
    block = readme_block("## Provisioning a robot")
    assert ROBOT_ID in block
    assert f'id = "{ROBOT_ID}"' in toml.read_text()
    replacements = {**broker, "8080": str(http)}
    out, err = run_block(substitute(block, replacements), folder, sessions)
    output = out + err

    # Each step named the next, and provisioning named the files robot.toml already points at.
    assert f"cloud-sync robot add {ROBOT_ID} --model-id" in output
    assert f"cloud-sync robot provision {ROBOT_ID}" in output
    config = load_config(toml)
    assert f'credentials_file = "{config.cloud.credentials_file}"' in output
    assert f'trust_file = "{config.tickets.trust_file}"' in output
    assert "next: `cloud-sync broker-config --out DIR` gives the broker the new password" in output

    [kid] = json.loads((folder / "var" / "trust.json").read_text())["keys"]
    database = folder / "var" / "robot.db"

    def until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        try:
            wait_until(condition, timeout, what, interval=0.1)
        except TimeoutError as expired:
            said = (folder / "block.log").read_text()
            raise AssertionError(f"{expired}; the block's processes said:\n{said}") from None

    # Down: the agent takes the cloud's signing key into its database (the trust file does not put it there).
    until(lambda: robot_trusts(database, kid["kid"]), "the signing key on the robot")

    # Up: a ticket the robot checks is used in the cloud.
    cloud_db = f"sqlite:///{folder / 'var' / 'cloud.db'}"
    token = subprocess.run(
        [str(BIN / "cloud-sync"), "token", "create", "--role", "admin", "--db", cloud_db],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    until(lambda: accepts_connections("127.0.0.1", http), "cloud-sync serve")
    user = request(http, "POST", "/base_api/admin/user", token, {"name": "Anna"})
    now = dt.datetime.now(dt.UTC).isoformat()
    ticket = request(
        http,
        "POST",
        "/base_api/admin/ticket",
        token,
        {
            "user_id": user["id"],
            "train_number": 742,
            "wagon_number": 3,
            "place_number": 17,
            "date": now,
            "station_id": "MSK",
            "destination_id": "SPB",
            "start_date": now,
        },
    )
    checked = subprocess.run(
        [str(BIN / "robot-agent"), "--config", str(toml), "verify-ticket", ticket["token"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    until(
        lambda: bool(request(http, "GET", f"/base_api/admin/ticket/{ticket['id']}", token)["used"]),
        "the ticket's check to reach the cloud",
    )
