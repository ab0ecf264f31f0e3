"""`robot-agent run` as a process, against a real Mosquitto (passwords and the fleet's ACL) and a real
`cloud-sync ingest`: fault 2 of issue 4 (the agent killed with SIGKILL at 20 random moments while purchases
stream into its database: the cloud ends with exactly the purchases committed on the robot), and an agent
started while the broker is down (it works offline, connects when the broker comes, reports telemetry, and
stops cleanly on SIGTERM)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from robot_agent.clock import Clock
from robot_agent.identity import create_key_file
from robot_agent.store import outbox
from robot_agent.store.database import open_store
from robot_agent.store.outbox import Backlog
from tests.conftest import MosquittoFactory
from tests.e2e.test_sync_faults import start_ingest, stored_purchases
from tests.integration.test_robot_link import ACL, PASSWORDS, ROBOT, Watcher, state_is, topic, watch
from tests.support.mosquitto import MosquittoBroker
from tests.support.sync import make_purchases, robot_toml, seed_cloud
from tests.support.tasks import eventually

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
# Reproduce a run with the seed it printed: RAILBOT_FAULT_SEED=... pytest tests/e2e/test_robot_agent_faults.py
SEED_VARIABLE = "RAILBOT_FAULT_SEED"

# Commits a few purchases per transaction to the robot's database until SIGTERM, printing each purchase's id
# only after its transaction committed: what it printed is exactly what the robot committed.
WRITER = textwrap.dedent(
    """
    import random, signal, sys, time, uuid
    from pathlib import Path
    from robot_agent.store.database import open_store
    from tests.support.sync import make_purchases
    store = open_store(Path(sys.argv[1]))
    store_id, item_id, rng = uuid.UUID(sys.argv[2]), uuid.UUID(sys.argv[3]), random.Random(int(sys.argv[4]))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        for purchase in make_purchases(store, store_id, item_id, rng.randint(1, 3)):
            print(purchase, flush=True)
        time.sleep(0.01)
    """
)


async def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll `condition` (every 50 ms) until it holds; fail naming `what` after `within_s` seconds."""
    await eventually(condition, what, within_s, poll_s=0.05)


async def until_connected(agent: subprocess.Popen[bytes], log: Path, within_s: float, what: str) -> None:
    """Wait until the agent's log says it connected; fail at once, with its log, if it exits instead."""
    await until(
        lambda: "connected (session present" in log_of(log) or agent.poll() is not None, within_s, what
    )
    assert agent.poll() is None, f"{what}: it exited with {agent.returncode}:\n{log_of(log)}"


def write_robot_toml(directory: Path, broker: MosquittoBroker) -> Path:
    """A robot.toml for ROBOT on `broker`, its key in robot.key; writes its broker credentials (0600)."""
    return robot_toml(directory, ROBOT, broker.url, PASSWORDS[str(ROBOT)])


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "robot-agent"), "--config", str(config), "run"], stdout=out, stderr=subprocess.STDOUT
        )


def start_writer(
    robot_db: Path, store_id: uuid.UUID, item_id: uuid.UUID, seed: int, report: Path
) -> subprocess.Popen[bytes]:
    with report.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", WRITER, str(robot_db), str(store_id), str(item_id), str(seed)],
            stdout=out,
            cwd=ROOT,
        )


def log_of(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def backlog(robot_db: Path) -> Backlog:
    store = open_store(robot_db)
    try:
        with store.begin() as conn:
            return outbox.backlog(conn, Clock())
    finally:
        store.dispose()


async def until_drained(robot_db: Path, cloud_db_url: str, within_s: float, what: str) -> None:
    try:
        await until(lambda: backlog(robot_db).events == 0, within_s, what)
    except AssertionError as err:
        stored = (await stored_purchases(cloud_db_url))[1]
        raise AssertionError(f"{err}: {backlog(robot_db)}, {stored} purchases in the cloud") from None


def committed(report: Path) -> list[uuid.UUID]:
    return [uuid.UUID(line) for line in report.read_text().split()]


async def test_the_agent_killed_at_20_random_moments_loses_and_doubles_nothing(
    cloud_db_url: str,
    mosquitto_factory: MosquittoFactory,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    """Fault 2. Each agent is killed either during its start-up (a quarter of the kills: opening the
    database, connecting) or at a random moment of its first second connected (sending again what was in
    flight, taking new batches, deleting acknowledged ones)."""
    seed = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(2**32))
    print(f"{SEED_VARIABLE}={seed}")
    rng = random.Random(seed)
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL, extra_config="log_type subscribe")
    key = create_key_file(tmp_path / "robot.key")
    config = write_robot_toml(tmp_path, broker)
    store_id, item_id = await seed_cloud(cloud_db_url, ROBOT, key)
    ingest = start_ingest(broker, cloud_db_url, tmp_path, "ingest", "ingest-1")
    processes.append(ingest)
    # Batches published before the shared subscription exists would wait out the sender's ack timeout.
    await until(
        lambda: "$share/ingest/" in log_of(broker.log_file) or ingest.poll() is not None,
        20,
        "ingest to subscribe",
    )
    assert ingest.poll() is None, f"ingest exited: {log_of(tmp_path / 'ingest.log')}"

    robot_db = tmp_path / "robot.db"
    open_store(robot_db).dispose()
    report = tmp_path / "committed.txt"
    writer = start_writer(robot_db, store_id, item_id, seed, report)
    processes.append(writer)

    in_cloud: list[int] = []
    in_flight: list[int] = []  # events in batches sent and not acknowledged, as each kill left them
    for n in range(KILLS):
        log = tmp_path / f"agent-{n:02d}.log"
        agent = start_agent(config, log)
        processes.append(agent)
        if rng.random() < 0.25:
            await asyncio.sleep(rng.uniform(0.0, 0.5))
        else:
            await until_connected(agent, log, 20, f"agent {n} to connect")
            await asyncio.sleep(rng.uniform(0.0, 1.0))
        assert agent.poll() is None, f"agent {n} exited by itself ({agent.returncode}):\n{log_of(log)}"
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        in_cloud.append((await stored_purchases(cloud_db_url))[1])
        in_flight.append(backlog(robot_db).in_flight)

    writer.send_signal(signal.SIGTERM)
    await until(lambda: writer.poll() is not None, 10, "the writer to stop on SIGTERM")
    assert writer.returncode == 0
    made = committed(report)

    log = tmp_path / "agent-last.log"
    agent = start_agent(config, log)
    processes.append(agent)
    await until_drained(robot_db, cloud_db_url, 60, f"the robot's outbox to drain (seed {seed})")
    agent.send_signal(signal.SIGTERM)
    await until(lambda: agent.poll() is not None, 15, "the agent to stop on SIGTERM")
    assert agent.returncode == 0, log_of(log)

    ids, rows = await stored_purchases(cloud_db_url)
    print(f"purchases committed on the robot: {len(made)}; in the cloud after each kill: {in_cloud}")
    print(f"events in flight at each kill: {in_flight}")
    assert 0 < in_cloud[-1] < len(made), f"the kills did not come mid-stream: {in_cloud} of {len(made)}"
    assert any(in_flight), "no kill came while a batch was in flight"
    assert in_cloud[0] < in_cloud[-1], f"nothing reached the cloud between kills: {in_cloud}"
    assert len(set(made)) == len(made)
    assert ids == set(made), f"missing {len(set(made) - ids)}, extra {len(ids - set(made))} (seed {seed})"
    assert rows == len(made), f"{rows - len(made)} purchases stored twice (seed {seed})"


def received(watcher: Watcher, suffix: str) -> list[dict[str, object]]:
    with watcher.changed:
        messages: list[mqtt.MQTTMessage] = list(watcher.received)
    return [json.loads(m.payload) for m in messages if m.topic == topic(ROBOT, suffix)]


async def test_an_agent_started_with_the_broker_down_works_offline_then_reports_and_stops_cleanly(
    mosquitto_factory: MosquittoFactory, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    await asyncio.to_thread(broker.stop)
    create_key_file(tmp_path / "robot.key")
    config = write_robot_toml(tmp_path, broker)
    store = open_store(tmp_path / "robot.db")
    make_purchases(store, uuid.uuid4(), uuid.uuid4(), 25)
    store.dispose()

    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    processes.append(agent)
    await until(
        lambda: "link=offline backlog=25 " in log_of(log) or agent.poll() is not None,
        20,
        "the agent to report its backlog while offline",
    )
    await asyncio.sleep(3)  # the fault itself: the broker stays away for a few connect attempts
    assert agent.poll() is None, f"the agent exited while the broker was down:\n{log_of(log)}"

    await asyncio.to_thread(broker.start)
    watcher = watch(broker, topic(ROBOT, "up/status"), topic(ROBOT, "up/telemetry"))
    try:
        # Telemetry goes out at once on every connect, then every 10 s: one is due within 12 s.
        await until(lambda: bool(received(watcher, "up/telemetry")), 15, "telemetry once the broker is up")
        report = received(watcher, "up/telemetry")[0]
        assert report["link"] == "online"
        assert (report["backlog"], report["acked_batches"], report["last_ack_at"]) == (25, 0, None)
        assert isinstance(report["oldest_age_ms"], int)
        assert report["oldest_age_ms"] >= 3_000
        # No down-sync service on this broker: the robot has asked, and nothing came.
        assert report["down"] == {"cursors": {}, "applied_changes": 0, "refused_messages": 0}
        assert [s["state"] for s in received(watcher, "up/status")][-1:] == ["online"]

        agent.send_signal(signal.SIGTERM)
        await until(lambda: agent.poll() is not None, 15, "the agent to stop on SIGTERM")
        assert agent.returncode == 0, log_of(log)
        await until(
            lambda: [s["state"] for s in received(watcher, "up/status")][-1:] == ["offline"],
            10,
            "the agent's offline status",
        )
    finally:
        watcher.client.disconnect()
        watcher.client.loop_stop()
    late = watch(broker, topic(ROBOT, "up/status"))
    try:
        assert json.loads((await late.next_matching(state_is("offline"))).payload)["state"] == "offline"
    finally:
        late.client.disconnect()
        late.client.loop_stop()
    text = log_of(log)
    assert "stopping on SIGTERM" in text
    assert PASSWORDS[str(ROBOT)] not in text
    assert "PRIVATE KEY" not in text
