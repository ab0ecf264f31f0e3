"""Log lines as live events: engineers watching the robot see its warnings as they happen.

Attach `LiveLogHandler` to the root logger; each record at its level or above is published as a "log" event
(level, logger, message, and the exception's one-line summary). Log records are already free of card UIDs,
tokens, passwords and embeddings by the project's rule (STYLE.md), so they are sent as they are.
"""

from __future__ import annotations

import logging

from robot_agent.live import LiveEvents

MAX_MESSAGE = 2_000


class LiveLogHandler(logging.Handler):
    """Publishes records as "log" events; never raises into the code that logged."""

    def __init__(self, live: LiveEvents, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._live = live

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = {
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage()[:MAX_MESSAGE],
            }
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                data["error"] = f"{error.__class__.__name__}: {error}"[:MAX_MESSAGE]
            self._live.publish("log", data)
        except Exception:
            self.handleError(record)
