"""Log record formatting shared by the two programs: one line per event, as text or as JSON.

Pure formatting; the programs' `__main__` modules attach it to their handlers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from typing import Literal

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into JSON lines.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extras, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextLineFormatter(logging.Formatter):
    """`time level logger: message`, with a traceback folded onto the same line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        # A multi-line message or traceback would break "one line per event" for log shippers.
        return super().format(record).replace("\n", "\\n")


def make_formatter(kind: LogFormat) -> logging.Formatter:
    """The formatter for `--log-format text|json`."""
    return JsonLineFormatter() if kind == "json" else TextLineFormatter()


def configure(level: str | int, kind: LogFormat, stream_or_path: str | None = None) -> None:
    """Send every logger's records, one line each, to stderr or to a file. Called once, by `__main__`."""
    handler: logging.Handler = (
        logging.FileHandler(stream_or_path, encoding="utf-8") if stream_or_path else logging.StreamHandler()
    )
    handler.setFormatter(make_formatter(kind))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--log-format` and `--log-level` options both programs take."""
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="one line of text or one JSON object per event (default: text, or the config's choice)",
    )
    parser.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default=None,
        help="the least severe events to log (default: INFO, or the config's choice)",
    )
