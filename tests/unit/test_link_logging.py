"""The robot link's log: being offline (paho's reconnect attempts) is not logged as an error."""

from __future__ import annotations

import logging

import pytest

from robot_agent.sync.mqtt import _PAHO_LOG


def test_reconnect_attempts_while_offline_are_debug_and_other_paho_errors_stay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        _PAHO_LOG.error("Client is not connected. Socket: None). Last known Connection State: x")
        _PAHO_LOG.error("failed to receive on socket")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "failed to receive on socket")
    ]
    with caplog.at_level(logging.DEBUG):
        _PAHO_LOG.error("Client is not connected. Socket: None)")
    assert caplog.records[-1].levelname == "DEBUG"
