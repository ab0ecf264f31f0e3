"""Opening the robot's SQLite database: WAL, durable commits, foreign keys, and its schema migrated.

Every connection gets `synchronous=FULL`: a commit that returned is on disk, so an event in the outbox
survives a power cut as well as a kill (docs/sync.md, guarantee 1). WAL lets the sender read while the agent
writes. `secure_delete=ON`: a deleted row's bytes are overwritten with zeros, so a deleted passenger's sealed
face leaves the file (Debian builds SQLite with it on; a robot's build may not be).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from robot_agent.errors import RobotAgentError
from robot_agent.store.migrate import migrate


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def open_store(path: Path) -> Engine:
    """The engine of the robot's database at `path`, created if new and migrated to the newest schema
    (robot_agent/store/migrate.py); raises RobotAgentError for a database that cannot be used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RobotAgentError(f"cannot make the folder of the robot's database {path}: {err}") from err
    engine = create_engine(f"sqlite:///{path}", pool_size=2, max_overflow=2)
    event.listen(engine, "connect", _pragmas)
    try:
        migrate(engine, path)
    except SQLAlchemyError as err:
        engine.dispose()
        raise RobotAgentError(
            f"cannot open the robot's database {path}: {getattr(err, 'orig', None) or err}"
        ) from err
    except RobotAgentError:
        engine.dispose()
        raise
    return engine
