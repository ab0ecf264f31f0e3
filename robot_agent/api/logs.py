"""Log lines as live events: engineers watching the robot see what it does and what goes wrong as it happens.

Attach `LiveLogHandler` to the root logger; each record at its level or above is published as a "log" event:
level, part, logger, message, and the exception's one-line summary. `part` is the agent's part the logger
belongs to (`part_of`: "sync", "camera", "mcu", "api", "faces", ...), so the engineers' UI can filter by it.
The project's own loggers are published from INFO up; other libraries' from WARNING up (their INFO lines say
nothing an engineer acts on, and some are chatty). Log records are already free of card UIDs, tokens,
passwords and embeddings by the project's rule (STYLE.md), so they are sent as they are.
"""

from __future__ import annotations

import logging
from typing import Final

from robot_agent.live import LiveEvents

MAX_MESSAGE = 2_000

# Logger name prefixes of the project's own packages, published from the handler's level up.
OWN: Final = ("robot_agent", "hardware", "firmware_bridge", "broker_link", "models", "railbot")

# The part a logger belongs to: the longest matching prefix wins (a prefix matches itself and its children).
PARTS: Final = {
    "robot_agent.api": "api",
    "robot_agent.api.faces": "faces",
    "robot_agent.sync": "sync",
    "broker_link": "sync",
    "robot_agent.vision.camera": "camera",
    "robot_agent.vision.sources": "camera",
    "robot_agent.vision.fanout": "camera",
    "robot_agent.vision.faces": "faces",
    "robot_agent.faces": "faces",
    "models.faces": "faces",
    "robot_agent.vision.scan": "tickets",
    "robot_agent.vision.qr": "tickets",
    "robot_agent.tickets": "tickets",
    "robot_agent.devices": "mcu",
    "hardware": "mcu",
    "firmware_bridge": "mcu",
    "robot_agent.behaviour": "behaviour",
    "robot_agent.selling": "selling",
    "robot_agent.store": "database",
    "robot_agent.supervisor": "agent",
    "robot_agent.runtime": "agent",
    "robot_agent.loop_lag": "agent",
    "robot_agent.weights": "faces",
}
OTHER: Final = "other"


def part_of(logger: str) -> str:
    """The agent's part a logger's lines are about (OTHER when none matches)."""
    name = logger
    while name:
        if name in PARTS:
            return PARTS[name]
        name = name.rpartition(".")[0]
    return OTHER


def _own(logger: str) -> bool:
    return any(logger == prefix or logger.startswith(prefix + ".") for prefix in OWN)


class LiveLogHandler(logging.Handler):
    """Publishes records as "log" events; never raises into the code that logged. `level` applies to the
    project's loggers; others need `foreign_level` too."""

    def __init__(
        self, live: LiveEvents, level: int = logging.INFO, foreign_level: int = logging.WARNING
    ) -> None:
        super().__init__(level)
        self._live = live
        self._foreign_level = foreign_level

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno < self._foreign_level and not _own(record.name):
                return
            data = {
                "level": record.levelname,
                "part": part_of(record.name),
                "logger": record.name,
                "message": record.getMessage()[:MAX_MESSAGE],
            }
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                data["error"] = f"{error.__class__.__name__}: {error}"[:MAX_MESSAGE]
            self._live.publish("log", data)
        except Exception:
            self.handleError(record)
