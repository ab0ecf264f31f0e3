"""The robot's ticket desk on a real SQLite store: verdicts from the synced keys, revocations and assignment,
each check recorded with its outbox event, a valid ticket used up in the same transaction."""

from __future__ import annotations

import datetime as dt
import json
import logging
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from cloud_sync.desks.signing import trust_document
from models.sync_changes import Change, Changes
from models.tickets import TicketClaims, TrustedKey, Verdict, decode_ticket, encode_ticket, key_id, live_code
from robot_agent.config import RobotConfig, load_config
from robot_agent.errors import ConfigError
from robot_agent.identity import create_key_file
from robot_agent.store import replica
from robot_agent.store.database import open_store
from robot_agent.store.tables import ROBOT_METADATA
from robot_agent.tickets import CheckMethod, TicketDesk

SIGNER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
MOSCOW = "Europe/Moscow"
NOW = dt.datetime(2026, 11, 27, 19, 0, tzinfo=dt.UTC)  # 22:00 in Moscow
ROBOT = uuid.UUID("6f1c1a9e-3d2b-4f0e-9a51-7a0b5f3c2d10")
TABLES = ROBOT_METADATA.tables


def ticket(train: int = 742, date: dt.datetime = NOW, **changes: Any) -> tuple[uuid.UUID, str]:
    claims = TicketClaims(
        ticket_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        train_number=train,
        wagon_number=5,
        place_number=36,
        date=date.replace(microsecond=0),
        station_id="2000000",
        destination_id="2004000",
        start_date=date.replace(microsecond=0),
        code="A7K2Q9",
        issued_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        not_before=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        expires_at=dt.datetime(2026, 12, 5, tzinfo=dt.UTC),
        **changes,
    )
    return claims.ticket_id, encode_ticket(claims, SIGNER)


def write_config(directory: Path, tickets: str = "") -> RobotConfig:
    create_key_file(directory / "robot.key")
    path = directory / "robot.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [robot]
            id = "{ROBOT}"
            key_file = "robot.key"
            [assignment]
            train_number = 742
            timezone = "{MOSCOW}"
            [cloud]
            mqtt_url = "mqtt://127.0.0.1:1883"
            [storage]
            database = "robot.db"
            [camera.source]
            type = "device"
            [hardware]
            backend = "simulated"
            """
        )
        + tickets
    )
    return load_config(path)


def cloud_says(store: Engine, scope: str, *changes: tuple[str, str, dict[str, Any] | None]) -> None:
    """Changes as down-sync applies them (one log message of `scope`)."""
    with store.begin() as conn:
        after = replica.cursors(conn).get(scope, 0)
        made = tuple(
            Change(after + n, table, "upsert" if value else "delete", key, value)
            for n, (table, key, value) in enumerate(changes, start=1)
        )
        assert replica.apply_log(conn, Changes(scope, "log", after, after + len(made), made)) == len(made)


def signing_key_row(key: Ed25519PrivateKey, created: dt.datetime) -> tuple[str, str, dict[str, Any]]:
    raw = key.public_key().public_bytes_raw()
    kid = key_id(raw).hex()
    row = {"kid": kid, "public_key": raw.hex(), "created_at": created.isoformat(), "retired_at": None}
    return ("signing_keys", kid, row)


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    engine = open_store(tmp_path / "robot.db")
    cloud_says(engine, "all", signing_key_row(SIGNER, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    return engine


@pytest.fixture
def desk(store: Engine, tmp_path: Path) -> TicketDesk:
    return TicketDesk(store, write_config(tmp_path))


def events(store: Engine) -> list[dict[str, Any]]:
    outbox = TABLES["outbox"]
    with store.connect() as conn:
        rows = conn.execute(select(outbox.c.type, outbox.c.data).order_by(outbox.c.seq)).all()
    return [{"type": row.type, **cbor2.loads(row.data)} for row in rows]


def test_a_valid_ticket_is_recorded_and_used_up_and_a_second_showing_names_when(
    store: Engine, desk: TicketDesk
) -> None:
    ticket_id, token = ticket()
    first = desk.check(token, CheckMethod.CAMERA, NOW)
    assert (first.verdict, first.ticket_id, first.train_number) == (Verdict.VALID, ticket_id, 742)
    again = desk.check(token, CheckMethod.TOKEN, NOW + dt.timedelta(minutes=7))
    assert again.verdict is Verdict.ALREADY_USED
    assert again.reason == "already checked by this robot at 22:00 (2026-11-27)"
    checks = events(store)
    assert [(e["type"], e["verdict"], e["method"], e["ticket_id"]) for e in checks] == [
        ("ticket.checked", "valid", "camera", ticket_id),
        ("ticket.checked", "already_used", "token", ticket_id),
    ]
    with store.connect() as conn:
        ledger = conn.execute(select(TABLES["used_tickets"])).all()
        recorded = conn.execute(
            select(TABLES["ticket_checks"].c.verdict, TABLES["ticket_checks"].c.method)
        ).all()
    assert [(row.ticket_id, row.seq) for row in ledger] == [(ticket_id, first.seq)]
    assert sorted(recorded) == [("already_used", "token"), ("valid", "camera")]


def test_every_refusal_is_recorded_and_uses_nothing(store: Engine, desk: TicketDesk) -> None:
    revoked_id, revoked = ticket()
    cloud_says(
        store,
        "train:742",
        (
            "ticket_revocations",
            str(revoked_id),
            {"ticket_id": str(revoked_id), "reason": "refund", "revoked_at": NOW.isoformat()},
        ),
    )
    cases = {
        "RB1:garbage": Verdict.BAD_BASE45,
        "hello": Verdict.BAD_PREFIX,
        revoked: Verdict.REVOKED,
        ticket(train=743)[1]: Verdict.WRONG_TRAIN,
        ticket(date=NOW - dt.timedelta(days=1))[1]: Verdict.WRONG_DATE,
        encode_ticket(decode_ticket(ticket()[1]).claims, Ed25519PrivateKey.generate()): Verdict.UNKNOWN_KEY,
    }
    for code, verdict in cases.items():
        assert desk.check(code, CheckMethod.TOKEN, NOW).verdict is verdict
    assert [e["verdict"] for e in events(store)] == [v.value for v in cases.values()]
    assert [e["ticket_id"] for e in events(store)][:2] == [None, None]
    with store.connect() as conn:
        assert conn.execute(select(TABLES["used_tickets"])).all() == []


def test_a_ticket_the_cloud_says_is_used_is_refused_as_used_elsewhere(
    store: Engine, desk: TicketDesk
) -> None:
    ticket_id, token = ticket()
    row = {
        "id": str(ticket_id),
        "user_id": str(uuid.uuid4()),
        "train_number": 742,
        "wagon_number": 5,
        "place_number": 36,
        "date": NOW.isoformat(),
        "station_id": "2000000",
        "destination_id": "2004000",
        "start_date": NOW.isoformat(),
        "code": "A7K2Q9",
        "used": True,
    }
    cloud_says(store, "train:742", ("tickets", str(ticket_id), row))
    outcome = desk.check(token, CheckMethod.CAMERA, NOW)
    assert outcome.verdict is Verdict.ALREADY_USED
    assert "another robot" in outcome.reason


def test_the_synced_assignment_decides_the_train_and_date(store: Engine, desk: TicketDesk) -> None:
    _, on_743 = ticket(train=743, date=NOW - dt.timedelta(days=1))
    assert desk.check(on_743, CheckMethod.TOKEN, NOW).verdict is Verdict.WRONG_TRAIN
    assignment_id = str(uuid.uuid4())
    assignment: dict[str, Any] = {
        "id": assignment_id,
        "robot_id": str(ROBOT),
        "train_number": 743,
        "train_date": (NOW - dt.timedelta(days=1)).date().isoformat(),
    }
    cloud_says(store, f"robot:{ROBOT}", ("robot_assignments", assignment_id, assignment))
    outcome = desk.check(on_743, CheckMethod.TOKEN, NOW)
    assert (outcome.verdict, outcome.train_number) == (Verdict.VALID, 743)
    # An assignment that has not begun yet does not count.
    later_id = str(uuid.uuid4())
    later = {**assignment, "id": later_id, "train_number": 744, "train_date": "2026-12-01"}
    cloud_says(store, f"robot:{ROBOT}", ("robot_assignments", later_id, later))
    assert desk.check(ticket(train=743, date=NOW - dt.timedelta(days=1))[1], CheckMethod.TOKEN, NOW).ok


def test_bound_tickets_need_a_fresh_live_code_within_the_configured_window(
    tmp_path: Path, store: Engine
) -> None:
    desk = TicketDesk(store, write_config(tmp_path, "[tickets]\nholder_window_s = 10\n"))
    wallet = Ed25519PrivateKey.generate()
    _, token = ticket(holder_key=wallet.public_key().public_bytes_raw())
    assert desk.check(token, CheckMethod.CAMERA, NOW).verdict is Verdict.HOLDER_PROOF_MISSING
    stale = live_code(token, wallet, NOW - dt.timedelta(seconds=11))
    assert desk.check(stale, CheckMethod.CAMERA, NOW).verdict is Verdict.HOLDER_PROOF_STALE
    assert desk.check(live_code(token, wallet, NOW - dt.timedelta(seconds=9)), CheckMethod.CAMERA, NOW).ok


def test_before_the_first_sync_the_provisioned_trust_file_is_the_trust_list(tmp_path: Path) -> None:
    empty = open_store(tmp_path / "robot.db")
    trust = tmp_path / "trust.json"
    entry = TrustedKey.from_public_key(
        SIGNER.public_key().public_bytes_raw(), valid_from=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    trust.write_text(trust_document([entry]).model_dump_json())
    _, token = ticket()
    without = TicketDesk(empty, write_config(tmp_path))
    assert without.check(token, CheckMethod.TOKEN, NOW).verdict is Verdict.UNKNOWN_KEY
    (tmp_path / "robot.key").unlink()
    with_file = TicketDesk(empty, write_config(tmp_path, '[tickets]\ntrust_file = "trust.json"\n'))
    assert with_file.check(token, CheckMethod.TOKEN, NOW).ok


def test_a_bad_trust_file_is_named(tmp_path: Path, store: Engine) -> None:
    (tmp_path / "trust.json").write_text('{"keys": [{"kid": "zz"}]}')
    with pytest.raises(ConfigError) as caught:
        TicketDesk(store, write_config(tmp_path, '[tickets]\ntrust_file = "trust.json"\n'))
    assert "tickets.trust_file" in str(caught.value.problems[0])


def test_two_desks_racing_on_one_ticket_accept_it_once(tmp_path: Path, store: Engine) -> None:
    config = write_config(tmp_path)
    _, token = ticket()
    outcomes: list[Verdict] = []
    start = threading.Barrier(8)

    def check() -> None:
        desk = TicketDesk(open_store(tmp_path / "robot.db"), config)
        start.wait()
        outcomes.append(desk.check(token, CheckMethod.CAMERA, NOW).verdict)

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted([Verdict.VALID] + [Verdict.ALREADY_USED] * 7)
    assert [e["verdict"] for e in events(store)].count("valid") == 1


def test_the_outcome_prints_as_json(desk: TicketDesk) -> None:
    ticket_id, token = ticket()
    shown = json.loads(json.dumps(desk.check(token, CheckMethod.IMAGE, NOW).as_json()))
    assert shown["ok"] is True
    assert shown["verdict"] == "valid"
    assert shown["ticket_id"] == str(ticket_id)
    assert shown["method"] == "image"
    assert shown["checked_at"] == NOW.isoformat()


def held(store: Engine, token: str, *, used: bool = False, user_id: uuid.UUID | None = None) -> uuid.UUID:
    """A ticket and its token in the robot's copy, as down-sync brings them (train 742's scope); its id."""
    claims = decode_ticket(token).claims
    row = {
        "id": str(claims.ticket_id),
        "user_id": str(user_id or claims.user_id),
        "train_number": claims.train_number,
        "wagon_number": claims.wagon_number,
        "place_number": claims.place_number,
        "date": claims.date.isoformat(),
        "station_id": claims.station_id,
        "destination_id": claims.destination_id,
        "start_date": claims.start_date.isoformat(),
        "code": claims.code,
        "used": used,
    }
    key = str(claims.ticket_id)
    tokens = {"ticket_id": key, "token": token, "expires_at": claims.expires_at.isoformat()}
    cloud_says(store, "train:742", ("tickets", key, row), ("ticket_tokens", key, tokens))
    return claims.ticket_id


def test_a_recognised_passenger_s_ticket_is_checked_like_a_shown_code_with_method_face(
    store: Engine, desk: TicketDesk
) -> None:
    passenger = uuid.uuid4()
    wallet = Ed25519PrivateKey.generate()
    # Bound to a wallet: shown as a bare code it would be refused; the face stands for the holder's proof.
    _, token = ticket(holder_key=wallet.public_key().public_bytes_raw())
    ticket_id = held(store, token, user_id=passenger)
    first = desk.check_face(passenger, NOW)
    assert first is not None
    assert (first.verdict, first.ticket_id, first.method, first.train_number) == (
        Verdict.VALID,
        ticket_id,
        CheckMethod.FACE,
        742,
    )
    again = desk.check_face(passenger, NOW + dt.timedelta(minutes=1))
    assert again is not None
    assert (again.verdict, again.reason) == (
        Verdict.ALREADY_USED,
        "already checked by this robot at 22:00 (2026-11-27)",
    )
    # The same ledger as a QR showing: the wallet's live code shown afterwards is already used.
    shown = desk.check(live_code(token, wallet, NOW), CheckMethod.CAMERA, NOW)
    assert shown.verdict is Verdict.ALREADY_USED
    assert [(e["verdict"], e["method"], e["ticket_id"]) for e in events(store)] == [
        ("valid", "face", ticket_id),
        ("already_used", "face", ticket_id),
        ("already_used", "camera", ticket_id),
    ]
    with store.connect() as conn:
        ledger = conn.execute(select(TABLES["used_tickets"].c.ticket_id, TABLES["used_tickets"].c.seq)).all()
    assert [tuple(row) for row in ledger] == [(ticket_id, first.seq)]


def test_a_face_checks_today_s_unused_ticket_first_and_every_check_still_runs(
    store: Engine, desk: TicketDesk
) -> None:
    passenger = uuid.uuid4()
    yesterday = held(store, ticket(date=NOW - dt.timedelta(days=1))[1], user_id=passenger)
    used_today = held(store, ticket()[1], user_id=passenger, used=True)
    today = held(store, ticket()[1], user_id=passenger)
    held(store, ticket(train=743)[1], user_id=passenger)  # another train's: never this robot's to check
    checked = [desk.check_face(passenger, NOW) for _ in range(3)]
    assert checked[0] is not None
    assert (checked[0].ticket_id, checked[0].verdict) == (today, Verdict.VALID)
    # Both of today's are used now (one here, one by another robot, the cloud says): either is refused.
    assert [(c.ticket_id in {today, used_today}, c.verdict) for c in checked[1:] if c is not None] == [
        (True, Verdict.ALREADY_USED)
    ] * 2
    assert yesterday not in {c.ticket_id for c in checked if c is not None}

    # Revoked, or only another day's ticket: recorded with the verifier's verdict, nothing used.
    revoked_holder, other_day_holder = uuid.uuid4(), uuid.uuid4()
    revoked = held(store, ticket()[1], user_id=revoked_holder)
    cloud_says(
        store,
        "train:742",
        (
            "ticket_revocations",
            str(revoked),
            {"ticket_id": str(revoked), "reason": "refund", "revoked_at": NOW.isoformat()},
        ),
    )
    held(store, ticket(date=NOW + dt.timedelta(days=2))[1], user_id=other_day_holder)
    refused = [desk.check_face(who, NOW) for who in (revoked_holder, other_day_holder)]
    assert [c.verdict if c else None for c in refused] == [Verdict.REVOKED, Verdict.WRONG_DATE]


def test_a_recognised_passenger_without_a_ticket_on_this_train_records_nothing(
    store: Engine, desk: TicketDesk, caplog: pytest.LogCaptureFixture
) -> None:
    stranger, elsewhere = uuid.uuid4(), uuid.uuid4()
    held(store, ticket(train=743)[1], user_id=elsewhere)
    caplog.set_level(logging.INFO)
    assert desk.check_face(stranger, NOW) is None
    assert desk.check_face(elsewhere, NOW) is None
    assert events(store) == []
    assert "holds no ticket for train=742" in caplog.text
    assert str(stranger) not in caplog.text
    assert str(elsewhere) not in caplog.text
