"""The private broker the sync tests rely on: passwords and ACLs are enforced, v5 reason codes arrive."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.conftest import MosquittoFactory
from tests.support.mosquitto import MosquittoBroker

ACL = """
user cloud
topic readwrite #

pattern write railbot/up/%u/#
pattern read railbot/down/%u/#
"""


def client(broker: MosquittoBroker, user: str, password: str) -> tuple[mqtt.Client, ReasonCode]:
    """A connected MQTT v5 client and the broker's CONNACK reason code."""
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{user}-{secrets.token_hex(3)}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    c.username_pw_set(user, password)
    connected = threading.Event()
    result: list[ReasonCode] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        result.append(reason)
        connected.set()

    c.on_connect = on_connect
    c.connect(broker.host, broker.port)
    c.loop_start()
    assert connected.wait(5), "no CONNACK within 5 s"
    return c, result[0]


def publish_reason(c: mqtt.Client, topic: str) -> ReasonCode:
    """Publish with QoS 1 and return the PUBACK's v5 reason code."""
    acked = threading.Event()
    reasons: list[ReasonCode] = []

    def on_publish(_c: mqtt.Client, _u: Any, _mid: int, reason: ReasonCode, _p: Any) -> None:
        reasons.append(reason)
        acked.set()

    c.on_publish = on_publish
    c.publish(topic, b"payload", qos=1)
    assert acked.wait(5), "no PUBACK within 5 s"
    return reasons[0]


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory) -> MosquittoBroker:
    return mosquitto_factory(users={"cloud": "cloud-pw", "robot-a": "a-pw", "robot-b": "b-pw"}, acl=ACL)


def test_wrong_password_is_refused(broker: MosquittoBroker) -> None:
    c, reason = client(broker, "robot-a", "wrong")
    c.loop_stop()
    assert reason.is_failure
    assert reason.getName() in ("Bad user name or password", "Not authorized")


def test_a_robot_may_publish_only_under_its_own_topics(broker: MosquittoBroker) -> None:
    c, reason = client(broker, "robot-a", "a-pw")
    try:
        assert not reason.is_failure
        assert not publish_reason(c, "railbot/up/robot-a/events").is_failure
        refused = publish_reason(c, "railbot/up/robot-b/events")
        assert refused.value == 0x87  # Not authorized: the v5 PUBACK tells, even when QoS 1 "succeeds"
    finally:
        c.disconnect()
        c.loop_stop()


def test_broker_restarts_on_the_same_port(broker: MosquittoBroker) -> None:
    port = broker.port
    broker.kill()
    broker.start()
    c, reason = client(broker, "cloud", "cloud-pw")
    c.disconnect()
    c.loop_stop()
    assert broker.port == port
    assert not reason.is_failure
