"""The cloud's MQTT link (cloud_sync.sync.mqtt_link) against a real Mosquitto with the fleet's ACL: what the
broker refuses is said, naming the topic and the reason code (paho reports a refused PUBACK as a success)."""

from __future__ import annotations

import logging

import pytest

from cloud_sync.sync.broker_login import BrokerLogin
from cloud_sync.sync.mqtt_link import CloudLink
from models.sync_batch import TOPIC_ROOT
from tests.conftest import MosquittoFactory
from tests.integration.test_robot_link import ACL, OTHER, PASSWORDS, ROBOT
from tests.support.tasks import eventually

LOGGER = "tests.cloud_link"


async def test_a_publish_the_broker_refuses_is_a_warning_naming_the_topic_and_the_reason(
    mosquitto_factory: MosquittoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl=ACL)
    # A robot's user may read its own down/ and write only under its own up/: down/ for another is refused.
    login = BrokerLogin(broker.url, str(ROBOT), PASSWORDS[str(ROBOT)], "cloud-link-test")
    caplog.set_level(logging.INFO, logger=LOGGER)
    link = CloudLink(
        login,
        role="down-sync",
        logger=logging.getLogger(LOGGER),
        subscriptions=[f"{TOPIC_ROOT}/{ROBOT}/down/#"],
    )
    async with link:
        await eventually(link.subscribed.is_set, "subscribed", 10.0)
        topic = f"{TOPIC_ROOT}/{OTHER}/down/changes"
        assert link.publish(topic, b"{}"), "paho did not take the message"

        def warnings() -> list[str]:
            return [
                r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
            ]

        await eventually(lambda: bool(warnings()), "a WARNING for the refused PUBACK", 10.0)
    assert warnings() == [f"down-sync client=cloud-link-test broker refused {topic}: not authorized (0x87)"]
