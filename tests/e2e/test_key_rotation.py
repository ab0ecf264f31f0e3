"""Ticket-signing keys as processes see them: `keys rotate` run while two `serve` processes share one
database, and `serve` started before any key exists."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.desks.signing import ACTIVE_KEY_TTL
from models.columns import utcnow
from models.tickets import decode_envelope, decode_ticket, split_code, verify_ticket
from robot_agent.tickets import load_trust_file
from tests.support.http import call
from tests.support.ports import accepts_connections, free_port, wait_until
from tests.support.postgres import ThrowawayDatabase

BIN = Path(sys.executable).parent
DEPARTURE = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).replace(microsecond=0).isoformat()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    database: ThrowawayDatabase = request.getfixturevalue("postgres_db")
    return database.dsn


def cloud(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [str(BIN / "cloud-sync"), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Serve:
    """`cloud-sync serve` as a process on a free port, its log in a file."""

    def __init__(self, db_url: str, keys: Path, cwd: Path, processes: list[subprocess.Popen[Any]]) -> None:
        self.port = free_port()
        self.log = cwd / f"serve-{self.port}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    *(str(BIN / "cloud-sync"), "serve", "--db", db_url),
                    "--keys-dir",
                    str(keys),
                    "--port",
                    str(self.port),
                ],
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        processes.append(self.process)
        wait_until(
            lambda: accepts_connections("127.0.0.1", self.port) or self.process.poll() is not None,
            30,
            "cloud-sync serve",
        )
        assert self.process.poll() is None, self.log.read_text()

    def issue(self, token: str, user_id: str, place: int) -> tuple[int, Any]:
        body = {
            "user_id": user_id,
            "train_number": 742,
            "wagon_number": 5,
            "place_number": place,
            "date": DEPARTURE,
            "station_id": "2000000",
            "destination_id": "2004000",
            "start_date": DEPARTURE,
        }
        return call(self.port, "/base_api/admin/ticket", token, body)

    def ticket(self, token: str, user_id: str, place: int) -> str:
        status, ticket = self.issue(token, user_id, place)
        assert status == 200, ticket
        issued: str = ticket["token"]
        return issued


def kid(token: str) -> str:
    return decode_envelope(token).kid.hex()


def test_serve_without_a_key_warns_and_answers_503_until_one_is_made(
    db_url: str, tmp_path: Path, processes: list[subprocess.Popen[Any]]
) -> None:
    keys = tmp_path / "keys"
    cloud("migrate", "--db", db_url, cwd=tmp_path)
    admin = cloud("token", "create", "--db", db_url, "--role", "admin", cwd=tmp_path)
    serve = Serve(db_url, keys, tmp_path, processes)
    message = "no ticket-signing key yet: run `cloud-sync keys rotate`"
    warning = f"WARNING cloud_sync: tickets cannot be issued (answered 503) until this is fixed: {message}"
    wait_until(lambda: warning in serve.log.read_text(), 10, "serve's warning")  # logged once it listens
    _, user = call(serve.port, "/base_api/admin/user", admin, {"name": "Анна"})
    assert serve.issue(admin, user["id"], 1) == (503, {"detail": message})

    made = cloud("keys", "rotate", "--db", db_url, "--keys-dir", str(keys), cwd=tmp_path)
    assert kid(serve.ticket(admin, user["id"], 2)) == made  # no key was remembered, so none to wait out


def test_a_rotation_reaches_every_serving_process_within_the_ttl(
    db_url: str, tmp_path: Path, processes: list[subprocess.Popen[Any]]
) -> None:
    keys = tmp_path / "keys"
    cloud("migrate", "--db", db_url, cwd=tmp_path)
    first = cloud("keys", "rotate", "--db", db_url, "--keys-dir", str(keys), cwd=tmp_path)
    admin = cloud("token", "create", "--db", db_url, "--role", "admin", cwd=tmp_path)
    serves = [Serve(db_url, keys, tmp_path, processes) for _ in range(2)]
    _, user = call(serves[0].port, "/base_api/admin/user", admin, {"name": "Анна"})
    tokens = [serve.ticket(admin, user["id"], place) for place, serve in enumerate(serves, start=1)]
    assert {kid(token) for token in tokens} == {first}

    # Both processes keep issuing while `keys rotate` runs as a third.
    stop = threading.Event()
    failures: list[Any] = []

    def issue_until_stopped(serve: Serve) -> None:
        place = 100
        while not stop.is_set():
            status, ticket = serve.issue(admin, user["id"], place)
            if status == 200:
                tokens.append(ticket["token"])
            else:
                failures.append((status, ticket))
            place += 1

    issuers = [threading.Thread(target=issue_until_stopped, args=(serve,)) for serve in serves]
    for thread in issuers:
        thread.start()
    try:
        second = cloud("keys", "rotate", "--db", db_url, "--keys-dir", str(keys), cwd=tmp_path)
        rotated = time.monotonic()
        # Not a wait for readiness: the bound itself. By then every process has re-read the active key since
        # the rotation committed, so what it issues is signed by the new key.
        time.sleep(max(0.0, rotated + ACTIVE_KEY_TTL - time.monotonic()))
        late = [serve.ticket(admin, user["id"], 1000 + place) for place, serve in enumerate(serves, start=1)]
    finally:
        stop.set()
        for thread in issuers:
            thread.join()
    assert failures == []
    assert [kid(token) for token in late] == [second, second]
    assert {kid(token) for token in tokens} <= {first, second}
    tokens += late

    # Every ticket, whichever key signed it, verifies at both processes and at a robot holding the trust list.
    status, trust = call(serves[0].port, "/base_api/keys", admin)
    assert status == 200
    (tmp_path / "trust.json").write_text(json.dumps(trust))
    trusted = load_trust_file(tmp_path / "trust.json")
    for token in tokens:
        robot = verify_ticket(token, trust=trusted, now=utcnow())
        assert robot.ok, (robot.verdict, robot.reason)
        for serve in serves:
            status, verdict = call(serve.port, "/base_api/robot/ticket/verify", admin, {"token": token})
            assert (status, verdict["verdict"]) == (200, "valid"), verdict
    [new_key] = [key for key in trusted if key.kid.hex() == second]
    old_lag = max(
        (
            decode_ticket(split_code(t)[0]).claims.issued_at - new_key.valid_from
            for t in tokens
            if kid(t) == first
        ),
    )
    print(
        f"{len(tokens)} tickets, {sum(kid(t) == second for t in tokens)} by the new key; "
        f"the old key signed until {old_lag} after the rotation"
    )
