"""The behaviour on a real robot store: the seat and the places at the destination it tells a passenger let in
(filled as down-sync fills it), and the whole path from the ticket desk's verdict to the simulated gate."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from hardware.devices import LightPattern
from hardware.factory import open_devices
from models.sync_changes import Change, Changes
from models.tickets import decode_ticket, encode_ticket
from robot_agent.behaviour.configured import open_behaviour
from robot_agent.behaviour.events import Seat
from robot_agent.behaviour.places import SeatLookup, places_at
from robot_agent.behaviour.speaker import SimSpeaker
from robot_agent.live import LiveEvents
from robot_agent.store import replica
from robot_agent.store.database import open_store
from robot_agent.tickets import CheckMethod, TicketDesk
from tests.integration.test_ticket_desk import NOW, SIGNER, cloud_says, signing_key_row, ticket, write_config

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


async def test_a_valid_ticket_at_the_desk_opens_the_gate_once_and_a_forged_one_is_turned_away(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, '[behaviour]\nlanguage = "en"\nplaces = 2\n')
    store = open_store(config.storage.database)
    cloud_says(store, "all", signing_key_row(SIGNER, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    ticket_id, token = ticket()
    claims = decode_ticket(token).claims
    row = {
        "id": str(ticket_id),
        "user_id": str(claims.user_id),
        "train_number": claims.train_number,
        "wagon_number": claims.wagon_number,
        "place_number": claims.place_number,
        "date": claims.date.isoformat(),
        "station_id": claims.station_id,
        "destination_id": claims.destination_id,
        "start_date": claims.start_date.isoformat(),
        "code": claims.code,
        "used": False,
    }
    cloud_says(store, "train:742", ("tickets", str(ticket_id), row))
    place = {"description": None, "logo_url": None, "destination_id": claims.destination_id}
    cloud_says(
        store,
        "all",
        ("hotels", str(uuid.UUID(int=1)), {"id": str(uuid.UUID(int=1)), "name": "Astoria", **place}),
        ("attractions", str(uuid.UUID(int=2)), {"id": str(uuid.UUID(int=2)), "name": "Hermitage", **place}),
    )
    forger = Ed25519PrivateKey.generate()
    forged = encode_ticket(claims.model_copy(update={"ticket_id": uuid.uuid4()}), forger)
    desk = TicketDesk(store, config)
    devices = await open_devices("simulated", None, 115200)
    live = LiveEvents()
    speaker = SimSpeaker(live)
    driver = open_behaviour(config, devices, store, live=live, speaker=speaker)
    sim = devices.simulator
    assert sim is not None

    driver.on_outcome(desk.check(token, CheckMethod.CAMERA, NOW))
    await driver.handle(await driver._queue.get())
    assert sim.lights.showing == (LightPattern.SOLID, 0, 255, 0)
    driver.on_outcome(desk.check(forged, CheckMethod.CAMERA, NOW))
    await driver.handle(await driver._queue.get())
    assert sim.lights.showing == (LightPattern.BLINK, 255, 0, 0)

    assert [values for _, call, values in sim.commands if call == "gate.pulse"] == [{"ms": 3000}]
    assert sim.buzzer.sounding == 440
    assert [u.text for u in speaker.said] == [
        "Welcome aboard! Wagon 5, place 36.",
        "Hotels where you are going: Astoria.",
        "Worth seeing there: Hermitage.",
        "I cannot confirm who issued this ticket. Please ask the conductor.",
    ]
    await devices.close()
