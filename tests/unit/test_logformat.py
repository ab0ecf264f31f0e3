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


def test_json_line_lifts_the_messages_identifiers_into_fields() -> None:
    rec = record("batch sent robot=%s seq=%d ratio=%.1f path=%s", "r1", 7, 0.25, "/a b/c", batch_size=50)
    entry = json.loads(make_formatter("json").format(rec))
    assert entry["message"] == "batch sent robot=r1 seq=7 ratio=0.2 path=/a b/c"
    assert (entry["robot"], entry["seq"], entry["ratio"], entry["path"]) == ("r1", 7, 0.25, "/a b/c")
    assert entry["batch_size"] == 50


@pytest.mark.parametrize(
    ("message", "args", "fields"),
    [
        ("no identifiers %s here", ("x",), {}),
        ("100%% done robot=%s", ("r1",), {"robot": "r1"}),
        ("gate (state=%s, ms=%d)", ("open", 800), {"state": "open", "ms": 800}),
        ("id=%s missing=%s", ("r1", None), {"id": "r1", "missing": None}),
        ("named robot=%(robot)s", ({"robot": "r2"},), {"robot": "r2"}),
        ("a/b=%s", ("x",), {}),
    ],
)
def test_message_fields(message: str, args: tuple[object, ...], fields: dict[str, object]) -> None:
    entry = json.loads(make_formatter("json").format(record(message, *args)))
    base = {"time", "level", "logger", "message"}
    assert {k: v for k, v in entry.items() if k not in base} == fields


def test_an_identifier_never_replaces_a_base_field() -> None:
    entry = json.loads(make_formatter("json").format(record("level=%s message=%s", "x", "y")))
    assert (entry["level"], entry["message"]) == ("WARNING", "level=x message=y")
