"""Log lines: one per event, as text or as JSON."""

from __future__ import annotations

import json
import logging

import pytest

from models.logformat import make_formatter


def record(message: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    rec = logging.LogRecord("robot_agent.sync", logging.WARNING, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_line_carries_time_level_logger_message_and_extras() -> None:
    line = make_formatter("json").format(record("batch sent robot=%s seq=%d", "r1", 7, batch_size=50))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "robot_agent.sync"
    assert entry["message"] == "batch sent robot=r1 seq=7"
    assert entry["batch_size"] == 50
    assert entry["time"].endswith("+00:00")


@pytest.mark.parametrize("kind", ["text", "json"])
def test_a_traceback_stays_on_one_line(kind: str) -> None:
    line = make_formatter(kind).format(record("failed", exc=True))  # type: ignore[arg-type]
    assert "\n" not in line
    assert "ValueError" in line


def test_text_line_reads_time_level_logger_message() -> None:
    line = make_formatter("text").format(record("gate opened ms=%d", 800))
    _time, level, logger, message = line.split(" ", 3)
    assert (level, logger, message) == ("WARNING", "robot_agent.sync:", "gate opened ms=800")
