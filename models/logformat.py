"""Log record formatting shared by the two programs: one line per event, as text or as JSON.

Pure formatting; the programs' command lines (`robot_agent/cli/`, `cloud_sync/cli/`) attach it to their
handlers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Literal

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into JSON lines.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


# A %-conversion in a log message (%s, %d, %.1f, %(name)s, %%), and the `key=` right before one.
_CONVERSION = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[#0 +-]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?"
    r"(?P<type>[diouxXeEfFgGcrsa%])"
)
_KEY = re.compile(r"(?:^|(?<=[\s(\[,;]))(?P<key>[A-Za-z_][\w.]*)=$")


def message_fields(record: logging.LogRecord) -> dict[str, object]:
    """The identifiers a message names as `key=%s` (house style: "batch sent robot=%s seq=%d"), each with
    the argument it was given: {"robot": "...", "seq": 7}. Numbers stay numbers; other values are text."""
    template, args = record.msg, record.args
    if not isinstance(template, str) or not args:
        return {}
    fields: dict[str, object] = {}
    position = 0
    for conversion in _CONVERSION.finditer(template):
        if conversion["type"] == "%":
            continue
        if "*" in (conversion["width"], conversion["precision"]):
            return {}  # a width taken from the arguments: not worth following
        if conversion["name"] is not None:
            if not isinstance(args, Mapping) or conversion["name"] not in args:
                return {}
            value = args[conversion["name"]]
        else:
            if not isinstance(args, tuple) or position >= len(args):
                return {}
            value, position = args[position], position + 1
        key = _KEY.search(template, 0, conversion.start())
        if key is not None:
            fields[key["key"]] = _json_value(value)
    return fields


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the message's `key=value` identifiers as
    fields of their own, extras, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in message_fields(record).items():
            entry.setdefault(key, value)
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
    """Send every logger's records, one line each, to stderr or to a file. Called by the command lines' `main`
    (and by robot-agent's again once robot.toml's [logging] is read)."""
    handler: logging.Handler = (
        logging.FileHandler(stream_or_path, encoding="utf-8") if stream_or_path else logging.StreamHandler()
    )
    handler.setFormatter(make_formatter(kind))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def add_log_arguments(parser: argparse.ArgumentParser, default: object = None) -> None:
    """The `--log-format` and `--log-level` options both programs take (None when not given)."""
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default,
        help="one line of text or one JSON object per event (default: text, or the config's choice)",
    )
    parser.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default=default,
        help="the least severe events to log (default: INFO, or the config's choice)",
    )


def add_log_arguments_to_commands(parser: argparse.ArgumentParser) -> None:
    """Let every command and subcommand of `parser` take `--log-format` and `--log-level` as well, so that
    `cloud-sync migrate --log-format json` works as `cloud-sync --log-format json migrate` does.

    Call it once the commands are built. The commands' copies default to SUPPRESS: argparse copies a
    command's defaults over the namespace, which would otherwise undo a flag given before the command.
    """
    for action in parser._actions:  # argparse lists its subcommands nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for command in dict.fromkeys(action.choices.values()):  # an alias maps to the same parser
                add_log_arguments(command, default=argparse.SUPPRESS)
                add_log_arguments_to_commands(command)
