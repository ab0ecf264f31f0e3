"""What the behaviour needs from the robot's store when a ticket is valid: the passenger's wagon and place,
from the robot's copy of the ticket, and a few hotels and attractions at its destination (the seed's tables,
down-synced to every robot). Blocking reads: the driver calls `SeatLookup` off the event loop.
"""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy import Connection, Engine, select

from robot_agent.behaviour.events import Seat
from robot_agent.store import replica

PLACES: Final = 3


def places_at(conn: Connection, destination_id: str, limit: int = PLACES) -> tuple[list[str], list[str]]:
    """The names of up to `limit` hotels and `limit` attractions at `destination_id`, each in name order."""
    found: list[list[str]] = []
    for name in ("hotels", "attractions"):
        table = replica.table(name)
        query = (
            select(table.c.name)
            .where(table.c.destination_id == destination_id)
            .order_by(table.c.name, table.c.id)
            .limit(limit)
        )
        found.append(list(conn.execute(query).scalars()) if limit > 0 else [])
    return found[0], found[1]


def seat_of(conn: Connection, ticket_id: uuid.UUID, limit: int = PLACES) -> Seat | None:
    """The seat and destination of `ticket_id` with the places there, or None if the robot holds no copy of
    the ticket (a valid code of a ticket not synced here yet)."""
    tickets = replica.table("tickets")
    query = select(tickets.c.wagon_number, tickets.c.place_number, tickets.c.destination_id).where(
        tickets.c.id == ticket_id
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    hotels, attractions = places_at(conn, row.destination_id, limit)
    return Seat(row.wagon_number, row.place_number, row.destination_id, tuple(hotels), tuple(attractions))


class SeatLookup:
    """`seat_of` on the robot's store, one short read transaction a call (any thread)."""

    def __init__(self, store: Engine, limit: int = PLACES) -> None:
        self.store = store
        self.limit = limit

    def __call__(self, ticket_id: uuid.UUID) -> Seat | None:
        with self.store.connect() as conn:
            return seat_of(conn, ticket_id, self.limit)
