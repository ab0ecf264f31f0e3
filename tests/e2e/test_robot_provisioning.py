"""Provisioning robots and configuring the broker as an operator does, with `cloud-sync` as a process on a
migrated SQLite file, and the generated files proven on a real Mosquitto: passwords, ACL, refusals."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlmodel import select

from cloud_sync.db.database import create_engine, session_factory
from cloud_sync.sync.ingest_worker import SUBSCRIPTION as INGEST_SUBSCRIPTION
from cloud_sync.sync.provisioning import mosquitto_hash
from models.base_server import Robot
from robot_agent.identity import create_key_file, public_key_pem
from robot_agent.sync.mqtt import RobotLink
from tests.support.mosquitto import find_binary
from tests.support.ports import accepts_connections, free_port, wait_until

BIN = Path(sys.executable).parent
TOPICS = "railbot/v1/robots"
NOT_AUTHORIZED = 0x87
NO_SUBSCRIBERS = 0x10


def cloud(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cloud-sync"), *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


@dataclass
class Fleet:
    """A migrated cloud database with a signing key and robots in the seed's `robots` table."""

    directory: Path
    db: str
    kid: str
    robots: list[uuid.UUID] = field(default_factory=list)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cloud(*args, "--db", self.db, cwd=self.directory)

    def add_robot(self) -> uuid.UUID:
        robot_id = uuid.uuid4()
        with sqlite3.connect(self.directory / "cloud.db") as db:  # as the seed's Base database would
            db.execute(
                "INSERT INTO robots (id, robot_model_id, robot_model_name, created_at) VALUES (?, ?, ?, ?)",
                (robot_id.hex, "rb-2", "RailBot 2", "2026-11-27 08:00:00.000000"),
            )
        db.close()
        self.robots.append(robot_id)
        return robot_id


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert cloud("migrate", "--db", db, cwd=tmp_path).returncode == 0
    key = cloud("keys", "rotate", "--db", db, "--keys-dir", str(tmp_path / "keys"), cwd=tmp_path)
    assert key.returncode == 0, key.stderr
    return Fleet(directory=tmp_path, db=db, kid=key.stdout.strip())


def test_provision_writes_the_robots_files_and_never_prints_the_password(fleet: Fleet) -> None:
    robot_id = fleet.add_robot()
    out = fleet.directory / "robot"
    result = fleet.run(
        "robot", "provision", str(robot_id), "--mqtt-url", "mqtt://broker.train:1883", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    credentials = out / "mqtt-credentials"
    username, password = credentials.read_text().strip().split(":")
    assert username == f"robot-{robot_id}"
    assert len(password) >= 32
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert password not in result.stdout + result.stderr
    for shown in (str(robot_id), "mqtt://broker.train:1883", str(credentials), str(out / "trust.json")):
        assert shown in result.stdout
    [key] = json.loads((out / "trust.json").read_text())["keys"]
    assert (key["kid"], key["kty"], key["crv"], key["valid_to"]) == (fleet.kid, "OKP", "Ed25519", None)
    pepper = out / "card-pepper"  # the fleet's card pepper: the robot matches auth cards with it
    assert pepper.stat().st_mode & 0o777 == 0o600
    assert len(pepper.read_bytes()) == 32
    assert pepper.read_bytes().hex() not in result.stdout + result.stderr
    assert f'card_key_file = "{pepper.resolve()}"' in result.stdout
    pepper_bytes = pepper.read_bytes()

    again = fleet.run(
        "robot", "provision", str(robot_id), "--mqtt-url", "mqtt://broker.train:1883", "--out", str(out)
    )
    assert again.returncode == 0, again.stderr
    assert credentials.read_text().strip().split(":")[1] != password
    assert (out / "card-pepper").read_bytes() == pepper_bytes  # one pepper for the fleet
    config = fleet.run("broker-config", "--out", str(fleet.directory / "broker"))
    assert config.returncode == 0, config.stderr
    security = json.loads((fleet.directory / "broker" / "dynamic-security.json").read_text())
    users = [client["username"] for client in security["clients"]]
    assert users == [username, "cloud-ingest"]  # replaced, not added


def test_an_unknown_robot_or_a_bad_url_is_refused_in_one_line(fleet: Fleet) -> None:
    unknown = uuid.uuid4()
    out = fleet.directory / "robot"
    result = fleet.run(
        "robot", "provision", str(unknown), "--mqtt-url", "mqtt://127.0.0.1:1883", "--out", str(out)
    )
    assert (result.returncode, result.stderr.strip()) == (
        1,
        f"cloud-sync: no robot with id {unknown} in the robots table: create it first "
        "(POST /base_api/admin/robot)",
    )
    assert not out.exists()
    robot_id = fleet.add_robot()
    bad = fleet.run("robot", "provision", str(robot_id), "--mqtt-url", "http://x:80", "--out", str(out))
    assert (bad.returncode, bad.stderr.strip()) == (
        1,
        "cloud-sync: not a broker URL: 'http://x:80': use mqtt://HOST:PORT",
    )


def test_robot_add_registers_the_robot_under_its_own_id_and_names_the_next_step(
    cloud_db_url: str, tmp_path: Path
) -> None:
    robot_id = uuid.uuid4()
    pem = public_key_pem(create_key_file(tmp_path / "robot.key"))

    def add(*args: str) -> subprocess.CompletedProcess[str]:
        return cloud(
            "robot",
            "add",
            "--db",
            cloud_db_url,
            "--model-id",
            "rb-2",
            "--model-name",
            "RB",
            *args,
            cwd=tmp_path,
        )

    added = add(str(robot_id), "--public-key", pem)
    assert added.returncode == 0, added.stderr
    assert f"cloud-sync robot provision {robot_id} --db " in added.stdout.splitlines()[-1]
    assert robot_rows(cloud_db_url) == [(robot_id, "rb-2", "RB", pem)]

    again = add(str(robot_id), "--public-key", pem)
    assert (again.returncode, again.stderr) == (1, f"cloud-sync: a robot with id {robot_id} already exists\n")
    bad = add(str(uuid.uuid4()), "--public-key", "not a key")
    assert (bad.returncode, bad.stderr) == (
        1,
        "cloud-sync: not a robot: --public-key: not an Ed25519 public key in PEM (as `robot-agent keys show` "
        "prints it)\n",
    )
    assert robot_rows(cloud_db_url) == [(robot_id, "rb-2", "RB", pem)]

    out = tmp_path / "robot"
    provisioned = cloud(
        "robot",
        "provision",
        str(robot_id),
        "--db",
        cloud_db_url,
        "--mqtt-url",
        "mqtt://b:1883",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert provisioned.returncode == 0, provisioned.stderr
    assert f'credentials_file = "{out.resolve() / "mqtt-credentials"}"' in provisioned.stdout
    assert f'trust_file = "{out.resolve() / "trust.json"}"' in provisioned.stdout


def robot_rows(url: str) -> list[tuple[uuid.UUID, str, str, str | None]]:
    async def read() -> list[tuple[uuid.UUID, str, str, str | None]]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as session:
                rows = (await session.exec(select(Robot))).all()
                return [(r.id, r.robot_model_id, r.robot_model_name, r.public_key) for r in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_our_hash_is_the_one_mosquitto_passwd_writes(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    subprocess.run([find_binary("mosquitto_passwd"), "-b", str(passwd), "alice", "s3cret:x"], check=True)
    line = passwd.read_text().strip()
    match = re.fullmatch(r"alice:\$7\$101\$([A-Za-z0-9+/]{16})\$([A-Za-z0-9+/]{86}==)", line)
    assert match, line
    assert mosquitto_hash("s3cret:x", salt=base64.b64decode(match[1])) == line.removeprefix("alice:")
    assert re.fullmatch(r"\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==", mosquitto_hash("x"))


class Client:
    """A paho MQTT v5 client driven synchronously: connect, publish QoS 1 and see the PUBACK's reason code."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.username_pw_set(username, password)
        self.connected = threading.Event()
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, ReasonCode] = {}
        self.acked = threading.Condition()
        self.messages: list[mqtt.MQTTMessage] = []
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, message: self.messages.append(message)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.connack = reason
        self.connected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self.acked:
            self.pubacks[mid] = reason
            self.acked.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        with self.acked:
            [self.subacks[mid]] = reasons
            self.acked.notify_all()

    def connect(self) -> ReasonCode:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.connected.wait(5), "no CONNACK"
        assert self.connack is not None
        return self.connack

    def publish(self, topic: str) -> int:
        """Publish QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, b"{}", qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.pubacks, 5), f"no PUBACK for {topic}"
            return int(self.pubacks[info.mid].value)

    def subscribe(self, topic: str) -> int:
        """Subscribe QoS 1 and return the SUBACK's reason code (0x80 and above: refused)."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None, f"SUBSCRIBE {topic} not sent"
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.subacks, 5), f"no SUBACK for {topic}"
            return int(self.subacks[mid].value)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def provision(fleet: Fleet, robot_id: uuid.UUID) -> None:
    provisioned = fleet.run(
        "robot",
        "provision",
        str(robot_id),
        "--mqtt-url",
        "mqtt://127.0.0.1:1883",
        "--out",
        str(fleet.directory / str(robot_id)),
    )
    assert provisioned.returncode == 0, provisioned.stderr


def start_mosquitto(
    config: Path, port: int, processes: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """`mosquitto -c config`, once it accepts connections on `port`."""
    process = subprocess.Popen([find_binary("mosquitto"), "-c", str(config)], stderr=subprocess.PIPE)
    processes.append(process)
    wait_until(lambda: process.poll() is not None or accepts_connections("127.0.0.1", port), 10, "mosquitto")
    assert process.poll() is None, process.stderr.read() if process.stderr else b""
    return process


@dataclass
class Logins:
    """Clients of the broker on `port`, with the credentials `broker-config` and `robot provision` wrote."""

    fleet: Fleet
    folder: Path
    port: int
    made: list[Client]

    def __call__(self, robot_id: uuid.UUID | None, password: str | None = None) -> Client:
        path = (
            self.folder / "ingest-credentials"
            if robot_id is None
            else self.fleet.directory / str(robot_id) / "mqtt-credentials"
        )
        username, real = path.read_text().strip().split(":")
        made = Client(self.port, username, password or real)
        self.made.append(made)
        return made


def generated_broker(fleet: Fleet, processes: list[subprocess.Popen[bytes]], clients: list[Client]) -> Logins:
    """A Mosquitto on the config `broker-config` generates, run as the user running the test: as root,
    with `user root` in front, because the test's folder (under /tmp/pytest-of-root, mode 0700) is not one
    user `mosquitto` can reach (test_a_broker_started_as_root_reads_the_generated_files starts it as is)."""
    port = free_port()
    folder = fleet.directory / "broker"
    config = fleet.run("broker-config", "--out", str(folder), "--listen", f"127.0.0.1:{port}")
    assert config.returncode == 0, config.stderr
    run_as = "user root\n" if os.geteuid() == 0 else ""
    test_config = folder / "test.conf"
    test_config.write_text(
        f"{run_as}log_dest file {folder / 'mosquitto.log'}\n{(folder / 'mosquitto.conf').read_text()}"
    )
    start_mosquitto(test_config, port, processes)
    return Logins(fleet, folder, port, clients)


def test_a_real_mosquitto_takes_the_generated_files(
    fleet: Fleet, clients: list[Client], processes: list[subprocess.Popen[bytes]]
) -> None:
    mine, other = fleet.add_robot(), fleet.add_robot()
    for robot_id in (mine, other):
        provision(fleet, robot_id)
    folder = fleet.directory / "broker"
    config = fleet.run("broker-config", "--out", str(folder))
    assert config.returncode == 0, config.stderr
    ingest_before = (folder / "ingest-credentials").read_text()
    assert (folder / "ingest-credentials").stat().st_mode & 0o777 == 0o600
    # A second run keeps the ingest password a running ingest already uses.
    client = generated_broker(fleet, processes, clients)
    assert (folder / "ingest-credentials").read_text() == ingest_before
    generated = (folder / "mosquitto.conf").read_text()
    for limit in (
        "max_queued_messages 100000",
        "max_inflight_messages 20",
        "persistence true",
        "allow_anonymous false",
    ):
        assert f"\n{limit}\n" in generated

    wrong = client(mine, password="not-the-password")
    assert wrong.connect().is_failure
    ingest = client(None)
    assert not ingest.connect().is_failure
    ingest.client.subscribe(f"{TOPICS}/+/up/#", qos=1)
    robot = client(mine)
    assert not robot.connect().is_failure
    wait_until(
        lambda: robot.publish(f"{TOPICS}/{mine}/up/batch") == 0 and bool(ingest.messages),
        5,
        "ingest to get it",
    )
    assert robot.publish(f"{TOPICS}/{other}/up/batch") == NOT_AUTHORIZED
    assert robot.publish(f"{TOPICS}/{mine}/down/ack") == NOT_AUTHORIZED
    assert {message.topic for message in ingest.messages} == {f"{TOPICS}/{mine}/up/batch"}


def test_a_robot_may_subscribe_to_its_own_down_topics_only(
    fleet: Fleet, clients: list[Client], processes: list[subprocess.Popen[bytes]]
) -> None:
    a, b = fleet.add_robot(), fleet.add_robot()
    for robot_id in (a, b):
        provision(fleet, robot_id)
    client = generated_broker(fleet, processes, clients)
    ingest = client(None)
    assert not ingest.connect().is_failure
    # Every subscription the cloud makes (cloud_sync/sync/ingest_worker.py, cloud_sync/sync/downsync.py)
    # is granted.
    for topic in (
        INGEST_SUBSCRIPTION,
        *(f"{TOPICS}/+/up/{kind}" for kind in ("sync", "status", "telemetry")),
    ):
        assert ingest.subscribe(topic) < 0x80, topic
    robot_a, robot_b = client(a), client(b)
    assert not robot_a.connect().is_failure
    assert not robot_b.connect().is_failure
    # Refused, not only filtered at delivery: a share of the ingest group would take robots' batches.
    for topic in (
        INGEST_SUBSCRIPTION,
        f"{TOPICS}/+/up/batch",
        f"{TOPICS}/#",
        f"{TOPICS}/{b}/down/#",
        "#",
        "foo/bar",
    ):
        assert robot_a.subscribe(topic) == NOT_AUTHORIZED, topic
    assert robot_a.subscribe(f"{TOPICS}/{a}/down/#") == 1  # granted QoS 1, as robot_agent/sync/mqtt.py asks
    assert robot_b.subscribe(f"{TOPICS}/{b}/down/#") == 1

    # The symptom: with A in the shared group, half of B's batches went to A and were dropped at
    # delivery. Now every one reaches ingest, and ingest's ack reaches B alone.
    sent = [f"{TOPICS}/{b}/up/batch"] * 10
    for topic in sent:
        assert robot_b.publish(topic) == 0
    wait_until(lambda: len(ingest.messages) == len(sent), 5, "ingest to get all of B's batches")
    assert [message.topic for message in ingest.messages] == sent
    ingest.client.publish(f"{TOPICS}/{b}/down/ack", b"{}", qos=1)
    wait_until(lambda: bool(robot_b.messages), 5, "B to get its ack")
    assert [message.topic for message in robot_b.messages] == [f"{TOPICS}/{b}/down/ack"]
    assert robot_a.messages == []


@pytest.fixture
def reachable_folder() -> Iterator[Path]:
    """An empty folder user `mosquitto` may enter (pytest's tmp_path is under a 0700 folder of root's)."""
    folder = Path(tempfile.mkdtemp(prefix="railbot-broker-", dir="/tmp"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder)


def test_a_broker_started_as_root_reads_the_generated_files(
    fleet: Fleet,
    reachable_folder: Path,
    clients: list[Client],
    processes: list[subprocess.Popen[bytes]],
) -> None:
    mine = fleet.add_robot()
    provision(fleet, mine)
    port = free_port()
    folder = reachable_folder / "broker"
    config = fleet.run("broker-config", "--out", str(folder), "--listen", f"127.0.0.1:{port}")
    assert config.returncode == 0, config.stderr
    assert "warning" not in config.stderr  # the broker's user can reach the folder
    # Secrets are readable by their owner and the broker's group at most, never by others.
    for name in ("dynamic-security.json", "mosquitto.conf", "ingest-credentials"):
        assert (folder / name).stat().st_mode & 0o007 == 0, name
    assert (folder / "ingest-credentials").stat().st_mode & 0o777 == 0o600
    if os.geteuid() == 0:  # as the tests run here and in CI
        broker_user = pwd.getpwnam("mosquitto")
        for name in ("dynamic-security.json", "mosquitto.conf"):
            status = (folder / name).stat()
            assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (0, broker_user.pw_gid, 0o640)
        assert (folder / "data").stat().st_uid == broker_user.pw_uid

    # The ordinary way: `mosquitto -c` as root; it switches to user mosquitto before it opens the files.
    broker = start_mosquitto(folder / "mosquitto.conf", port, processes)
    client = Logins(fleet, folder, port, clients)
    robot = client(mine)
    assert not robot.connect().is_failure
    assert robot.publish(f"{TOPICS}/{mine}/up/batch") == NO_SUBSCRIBERS  # accepted; no ingest yet

    # A robot provisioned while the broker runs connects after the documented step: broker-config, restart.
    late = fleet.add_robot()
    provision(fleet, late)
    config = fleet.run("broker-config", "--out", str(folder), "--listen", f"127.0.0.1:{port}")
    assert config.returncode == 0, config.stderr
    assert "restart the broker" in config.stdout
    broker.terminate()
    assert broker.wait(10) == 0
    assert (folder / "data" / "mosquitto.db").exists()  # written by the broker's user on the way out
    start_mosquitto(folder / "mosquitto.conf", port, processes)
    assert not client(late).connect().is_failure
    assert not client(mine).connect().is_failure


def test_broker_config_warns_when_the_brokers_user_cannot_reach_the_folder(fleet: Fleet) -> None:
    folder = fleet.directory / "broker"
    config = fleet.run("broker-config", "--out", str(folder))
    assert config.returncode == 0, config.stderr
    if os.geteuid() == 0:  # pytest's tmp_path is under /tmp/pytest-of-root, mode 0700
        closed = next(p for p in [*reversed(folder.parents), folder] if not p.stat().st_mode & 0o001)
        assert [line for line in config.stderr.splitlines() if "warning" in line] == [
            f"cloud-sync: warning: user mosquitto cannot enter {closed}: a broker started as root "
            f"switches to that user and will not open {folder}'s files; use a folder it can reach"
        ]
    else:
        assert "warning" not in config.stderr


async def test_the_robots_own_link_works_on_the_generated_config(
    fleet: Fleet,
    clients: list[Client],
    processes: list[subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mine = fleet.add_robot()
    provision(fleet, mine)
    client = generated_broker(fleet, processes, clients)
    ingest = client(None)
    assert not ingest.connect().is_failure
    assert ingest.subscribe(INGEST_SUBSCRIPTION) < 0x80
    assert ingest.subscribe(f"{TOPICS}/+/up/status") < 0x80
    username, password = (fleet.directory / str(mine) / "mqtt-credentials").read_text().strip().split(":")
    async with RobotLink(mine, f"mqtt://127.0.0.1:{client.port}", username, password) as link:
        async with asyncio.timeout(10):
            await link.wait_connected()  # after the SUBACK of its down/# subscription
            await link.publish("batch", b"a batch")
            await asyncio.to_thread(
                wait_until,
                lambda: any(m.topic == f"{TOPICS}/{mine}/up/batch" for m in ingest.messages),
                5,
                "ingest to get the batch",
            )
            ingest.client.publish(f"{TOPICS}/{mine}/down/ack", b"an ack", qos=1)
            assert await anext(aiter(link.messages("ack"))) == b"an ack"
    assert f"{TOPICS}/{mine}/up/status" in {m.topic for m in ingest.messages}  # retained, with a last will
    assert "refused" not in caplog.text
