"""The seat and the places at the destination the behaviour tells a passenger let in, read from a real robot
store filled as down-sync fills it."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import Engine

from models.sync_changes import Change, Changes
from robot_agent.behaviour.events import Seat
from robot_agent.behaviour.places import SeatLookup, places_at
from robot_agent.store import replica
from robot_agent.store.database import open_store

TICKET = uuid.UUID(int=42)


def fill(tmp_path: Path) -> Engine:
    store = open_store(tmp_path / "robot.db")
    changes: list[Change] = []

    def place(table: str, name: str, destination: str) -> None:
        key = str(uuid.uuid4())
        value = {
            "id": key,
            "name": name,
            "description": None,
            "logo_url": None,
            "destination_id": destination,
        }
        changes.append(Change(len(changes) + 1, table, "upsert", key, value))

    for name in ("Moika 22", "Astoria", "Angleterre", "Belmond"):
        place("hotels", name, "SPB")
    place("hotels", "Metropol", "MSK")
    place("attractions", "Hermitage", "SPB")
    ticket = {
        "id": str(TICKET),
        "user_id": str(uuid.uuid4()),
        "train_number": 742,
        "wagon_number": 3,
        "place_number": 17,
        "date": "2026-11-30T21:40:00+03:00",
        "station_id": "MSK",
        "destination_id": "SPB",
        "start_date": "2026-11-30T18:40:00+00:00",
        "code": "T1",
        "used": False,
    }
    with store.begin() as conn:
        replica.apply_log(conn, Changes("all", "log", 0, len(changes), tuple(changes)))
        tickets = (Change(1, "tickets", "upsert", str(TICKET), ticket),)
        replica.apply_log(conn, Changes("train:742", "log", 0, 1, tickets))
    return store


def test_places_at_a_destination_are_a_few_names_in_order(tmp_path: Path) -> None:
    store = fill(tmp_path)
    with store.connect() as conn:
        assert places_at(conn, "SPB") == (["Angleterre", "Astoria", "Belmond"], ["Hermitage"])
        assert places_at(conn, "SPB", limit=1) == (["Angleterre"], ["Hermitage"])
        assert places_at(conn, "SPB", limit=0) == ([], [])
        assert places_at(conn, "KZN") == ([], [])


def test_a_tickets_seat_comes_with_the_places_at_its_destination(tmp_path: Path) -> None:
    lookup = SeatLookup(fill(tmp_path), limit=2)
    assert lookup(TICKET) == Seat(3, 17, "SPB", ("Angleterre", "Astoria"), ("Hermitage",))
    assert lookup(uuid.UUID(int=43)) is None  # a ticket this robot holds no copy of
