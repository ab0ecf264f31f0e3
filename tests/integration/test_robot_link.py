"""The robot's MQTT link against a real Mosquitto with passwords and the fleet's ACL: status and last will,
PUBACK reason codes, a broker crash and the session that keeps down/ messages while the robot is away."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from robot_agent.sync.mqtt import LinkDownError, LinkError, RobotLink
from tests.conftest import MosquittoFactory
from tests.support.mosquitto import MosquittoBroker
from tests.support.tasks import eventually

ROBOT = uuid.UUID("0b0e5a1c-9d3e-4c1a-8f00-000000000001")
OTHER = uuid.UUID("0b0e5a1c-9d3e-4c1a-8f00-000000000002")
PASSWORDS = {"cloud": secrets.token_urlsafe(12), str(ROBOT): secrets.token_urlsafe(12)}
# The rule of docs/sync.md: a robot (user name = its id) writes its own up/# and reads its own down/#.
ACL = """
user cloud
topic readwrite #

pattern write railbot/v1/robots/%u/up/#
pattern read railbot/v1/robots/%u/down/#
"""
TIMEOUT = 5.0
ROOT = Path(__file__).resolve().parents[2]


def topic(robot: uuid.UUID, suffix: str) -> str:
    return f"railbot/v1/robots/{robot}/{suffix}"


@dataclass
class Watcher:
    """A plain paho client of the cloud's user: subscribes and records what arrives, for the test to await."""

    client: mqtt.Client
    received: list[mqtt.MQTTMessage] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, check: Callable[[mqtt.MQTTMessage], bool]) -> mqtt.MQTTMessage:
        with self.changed:
            found: list[mqtt.MQTTMessage] = []

            def seen() -> bool:
                found.extend(m for m in self.received if check(m))
                return bool(found)

            if not self.changed.wait_for(seen, TIMEOUT):
                topics = [(m.topic, m.payload) for m in self.received]
                raise AssertionError(f"no matching message within {TIMEOUT}s; received {topics}")
            return found[0]

    async def next_matching(self, check: Callable[[mqtt.MQTTMessage], bool]) -> mqtt.MQTTMessage:
        return await asyncio.to_thread(self.wait_for, check)

    def publish(self, to: str, payload: bytes) -> None:
        info = self.client.publish(to, payload, qos=1)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()


def watch(broker: MosquittoBroker, *topics: str) -> Watcher:
    """Connect as the cloud's user and subscribe to `topics` (QoS 1), waiting for the SUBACK."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"watcher-{secrets.token_hex(3)}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.username_pw_set("cloud", PASSWORDS["cloud"])
    watcher = Watcher(client)
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        assert not reason.is_failure, reason
        if topics:
            c.subscribe([(t, 1) for t in topics])
        else:
            subscribed.set()

    def on_subscribe(
        _c: mqtt.Client, _u: Any, _mid: int, _r: list[ReasonCode], _p: Properties | None
    ) -> None:
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with watcher.changed:
            watcher.received.append(message)
            watcher.changed.notify_all()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert subscribed.wait(TIMEOUT), "watcher not connected and subscribed"
    return watcher


def state_is(state: str) -> Callable[[mqtt.MQTTMessage], bool]:
    return lambda m: m.topic.endswith("/up/status") and bool(json.loads(m.payload)["state"] == state)


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MosquittoBroker:
    return mosquitto_factory(users=PASSWORDS, acl=ACL)


@pytest.fixture
def watchers() -> Iterator[Callable[..., Watcher]]:
    """`watchers(broker, *topics)`; every watcher is disconnected after the test."""
    made: list[Watcher] = []

    def make(broker: MosquittoBroker, *topics: str) -> Watcher:
        made.append(watch(broker, *topics))
        return made[-1]

    yield make
    for w in made:
        w.client.disconnect()
        w.client.loop_stop()


def robot_link(broker: MosquittoBroker) -> RobotLink:
    return RobotLink(ROBOT, broker.url, str(ROBOT), PASSWORDS[str(ROBOT)], keepalive_s=5)


@pytest.fixture
async def link(broker: MosquittoBroker) -> AsyncIterator[RobotLink]:
    async with robot_link(broker) as link:
        async with asyncio.timeout(TIMEOUT):
            await link.wait_connected()
        yield link


async def test_status_is_retained_online(
    broker: MosquittoBroker, link: RobotLink, watchers: Callable[..., Watcher]
) -> None:
    # PUBACKs come in order on one connection: once this one is back, the status before it is stored.
    await link.publish("batch", b"first")
    late = watchers(broker, topic(ROBOT, "up/status"))
    message = await late.next_matching(state_is("online"))
    assert message.retain
    assert json.loads(message.payload)["at"].endswith("Z")


async def test_publish_own_topic_succeeds_and_another_robots_is_refused(
    broker: MosquittoBroker, link: RobotLink, watchers: Callable[..., Watcher]
) -> None:
    ingest = watchers(broker, "railbot/v1/robots/+/up/batch")

    await link.publish("batch", b"mine")
    assert (await ingest.next_matching(lambda m: m.payload == b"mine")).topic == topic(ROBOT, "up/batch")

    with pytest.raises(LinkError, match=r"not authorized \(0x87\)") as refused:
        await link.publish_topic(topic(OTHER, "up/batch"), b"not mine")
    assert not isinstance(refused.value, LinkDownError)
    assert refused.value.reason_code == 0x87

    # A refusal is an answer, not a broken link: the next publish goes through.
    assert link.connected
    await link.publish("batch", b"mine again")
    await ingest.next_matching(lambda m: m.payload == b"mine again")
    assert all(m.payload != b"not mine" for m in ingest.received)


async def test_broker_crash_fails_the_pending_publish_and_the_link_comes_back(
    broker: MosquittoBroker, link: RobotLink, watchers: Callable[..., Watcher]
) -> None:
    assert broker.process is not None
    broker.process.send_signal(signal.SIGSTOP)  # the broker takes the PUBLISH into its socket, never answers
    pending = asyncio.create_task(link.publish("batch", b"in flight"))
    await asyncio.sleep(0)  # let publish() reach its PUBACK wait
    assert not pending.done()

    await asyncio.to_thread(broker.kill)
    with pytest.raises(LinkDownError):
        async with asyncio.timeout(TIMEOUT):
            await pending
    assert not link.connected
    with pytest.raises(LinkDownError, match="not connected"):
        await link.publish("batch", b"while down")

    await asyncio.to_thread(broker.start)
    async with asyncio.timeout(TIMEOUT):
        await link.wait_connected()
    ingest = watchers(broker, topic(ROBOT, "up/batch"), topic(ROBOT, "up/status"))
    await link.publish("batch", b"after restart")
    await ingest.next_matching(lambda m: m.payload == b"after restart")
    await ingest.next_matching(state_is("online"))


ROBOT_SCRIPT = """
import asyncio, os, sys, uuid
from robot_agent.sync.mqtt import RobotLink

async def main() -> None:
    robot = uuid.UUID(sys.argv[1])
    link = RobotLink(robot, sys.argv[2], str(robot), os.environ["ROBOT_PASSWORD"], keepalive_s=5)
    await link.start()
    await link.wait_connected()
    await link.publish("batch", b"hello")
    print("connected", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_robot_that_dies_is_retained_offline_by_its_last_will(
    broker: MosquittoBroker, watchers: Callable[..., Watcher]
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ROBOT_SCRIPT,
        str(ROBOT),
        broker.url,
        cwd=ROOT,
        env={**os.environ, "ROBOT_PASSWORD": PASSWORDS[str(ROBOT)]},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(10):
            assert await process.stdout.readline() == b"connected\n"
        status = watchers(broker, topic(ROBOT, "up/status"))
        await status.next_matching(state_is("online"))
    finally:
        process.kill()  # SIGKILL: no DISCONNECT, the socket just closes
        await process.wait()

    await status.next_matching(state_is("offline"))
    late = watchers(broker, topic(ROBOT, "up/status"))
    message = await late.next_matching(lambda m: True)
    assert message.retain
    assert json.loads(message.payload)["state"] == "offline"


async def test_down_messages_arrive_including_those_sent_while_offline(
    broker: MosquittoBroker, watchers: Callable[..., Watcher]
) -> None:
    cloud = watchers(broker)
    async with robot_link(broker) as link:
        async with asyncio.timeout(TIMEOUT):
            await link.wait_connected()
        inbox = link.messages("changes")
        cloud.publish(topic(ROBOT, "down/changes"), b"while online")
        async with asyncio.timeout(TIMEOUT):
            assert await anext(inbox) == b"while online"

    cloud.publish(topic(ROBOT, "down/ack"), b"while offline")

    async with robot_link(broker) as link:
        async with asyncio.timeout(TIMEOUT):
            assert await anext(link.messages("ack")) == b"while offline"
            await link.wait_connected()


async def test_a_clean_close_says_offline_and_the_will_is_not_sent(
    broker: MosquittoBroker, link: RobotLink, watchers: Callable[..., Watcher]
) -> None:
    await link.publish("batch", b"first")  # the online status is stored before the watcher subscribes
    status = watchers(broker, topic(ROBOT, "up/status"), topic(ROBOT, "up/probe"))
    await status.next_matching(state_is("online"))
    await link.close()
    assert not link.connected
    await status.next_matching(state_is("offline"))
    with pytest.raises(LinkDownError):
        await link.publish("batch", b"after close")
    # A will would come as a second "offline" as soon as the broker saw the connection end: by the time a
    # probe sent after close() has come round, it would be here.
    await asyncio.to_thread(status.publish, topic(ROBOT, "up/probe"), b"probe")
    await status.next_matching(lambda m: m.payload == b"probe")
    statuses = [m for m in status.received if m.topic == topic(ROBOT, "up/status")]
    assert [json.loads(m.payload)["state"] for m in statuses] == ["online", "offline"]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "robot_agent.sync.mqtt" and r.levelno == logging.WARNING
    ]


async def _attempts(caplog: pytest.LogCaptureFixture, line: str, count: int) -> None:
    """Wait until paho has logged `line` (one per connection attempt) `count` times."""
    await eventually(
        lambda: sum(r.getMessage().startswith(line) for r in caplog.records) >= count,
        f"{count} connection attempts",
        15,
        poll_s=0.1,
    )


async def test_a_broker_that_is_down_is_one_warning_naming_the_reason_and_an_info_when_back(
    broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="robot_agent.sync.mqtt")
    broker.stop()
    async with robot_link(broker) as link:
        await _attempts(caplog, "Connection failed, retrying", 3)
        assert _warnings(caplog) == [
            f"robot={ROBOT} cannot connect to the broker at {broker.host}:{broker.port}: "
            "connection refused (no broker listening) (retrying every 1-2 s)"
        ]
        broker.start()
        async with asyncio.timeout(TIMEOUT):
            await link.wait_connected()
        back = [r.getMessage() for r in caplog.records if "link back after" in r.getMessage()]
        assert len(back) == 1, back
        assert len(_warnings(caplog)) == 1


async def test_wrong_credentials_are_one_warning_naming_the_brokers_refusal(
    broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="robot_agent.sync.mqtt")
    async with RobotLink(ROBOT, broker.url, str(ROBOT), "not the password", keepalive_s=5) as link:
        await _attempts(caplog, "Sending CONNECT", 3)
        assert not link.connected
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "refused the connection: not authorized (0x87)" in warnings[0], warnings
