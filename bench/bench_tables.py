"""Bulk insert of seed rows into a SQLite file: through the models' table (SQLAlchemy Core) vs raw sqlite3.

The robot takes 100,000-ticket down-syncs; this shows what the ORM layer costs over the bare driver.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, insert

from bench.report import Figure
from models.base_server import BASE_METADATA, Ticket

ROWS = 50_000


def _rows() -> list[dict[str, object]]:
    user = uuid.uuid4()
    when = dt.datetime(2026, 11, 27, 21, 40, tzinfo=dt.UTC)
    return [
        {
            "id": uuid.uuid4(),
            "user_id": user,
            "train_number": 742,
            "wagon_number": i % 20,
            "place_number": i % 60,
            "date": when,
            "station_id": "2000000",
            "destination_id": "2004000",
            "start_date": when,
            "code": f"CODE{i:08d}",
            "used": False,
        }
        for i in range(ROWS)
    ]


def _through_models(path: Path, rows: list[dict[str, object]]) -> float:
    engine = create_engine(f"sqlite:///{path}")
    BASE_METADATA.create_all(engine)
    start = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(BASE_METADATA.tables[Ticket.__tablename__]), rows)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def _raw(path: Path, rows: list[dict[str, object]]) -> float:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE tickets (id CHAR(32) PRIMARY KEY, user_id CHAR(32), train_number INTEGER,"
        " wagon_number INTEGER, place_number INTEGER, date DATETIME, station_id VARCHAR(60),"
        " destination_id VARCHAR(60), start_date DATETIME, code VARCHAR(128), used BOOLEAN)"
    )
    start = time.perf_counter()
    with db:
        db.executemany(
            "INSERT INTO tickets VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                (
                    r["id"].hex,  # type: ignore[attr-defined]
                    r["user_id"].hex,  # type: ignore[attr-defined]
                    r["train_number"],
                    r["wagon_number"],
                    r["place_number"],
                    r["date"].isoformat(" "),  # type: ignore[attr-defined]
                    r["station_id"],
                    r["destination_id"],
                    r["start_date"].isoformat(" "),  # type: ignore[attr-defined]
                    r["code"],
                    r["used"],
                )
                for r in rows
            ),
        )
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def run() -> list[Figure]:
    rows = _rows()
    with tempfile.TemporaryDirectory() as tmp:
        models = _through_models(Path(tmp) / "models.db", rows)
        raw = _raw(Path(tmp) / "raw.db", rows)
    return [
        Figure("ticket rows inserted/s, models (SQLite)", ROWS / models, "raw sqlite3", ROWS / raw, "rows/s")
    ]
