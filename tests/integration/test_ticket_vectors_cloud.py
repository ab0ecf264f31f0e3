"""Every ticket test vector (`tests/vectors/tickets`) through the cloud's verify endpoint, on SQLite and
PostgreSQL: the cloud's trust list, revocations, used flags and clock are made the vector's, and the cloud
must answer what the robot's verifier answers offline."""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Any, Final

import pytest
from sqlmodel import select

from cloud_sync.db.tables import SigningKey
from models.base_api import VerifyRequest
from models.base_server import Ticket, User
from models.tickets import Verdict, verify_ticket
from tests.integration.test_base_api import robot_token
from tests.support.cloud import Cloud
from tests.unit.test_ticket_vectors import VECTORS, WITH_CLAIMS, Vector, by_name, parse_time
from tests.vectors.tickets.make_vectors import claims_from_json

# The cloud calls verify_ticket with its defaults; a vector that needs other settings is a different case.
_DEFAULTS = inspect.signature(verify_ticket).parameters
CLOUD_TOLERANCE: Final = _DEFAULTS["clock_tolerance"].default
CLOUD_HOLDER_WINDOW: Final = _DEFAULTS["holder_window"].default
MAX_REQUEST_TOKEN: Final = VerifyRequest.model_fields["token"].metadata[0].max_length

# The vectors the cloud answers differently from the robot, and why. Every other vector gets the robot's
# verdict: the cloud's trust list (one signing_keys row per key, created_at .. retired_at) expresses each
# vector's, and its defaults are the vectors' tolerance and holder window.
CLOUD_REFUSES_TO_READ: Final = {
    "too_large_token": "4,297 characters: the robot reads up to 4,296 (a QR code's most) and says too_large; "
    "the verify request takes as many, no more, and is a 422",
}


async def give_the_cloud(cloud: Cloud, vector: Vector) -> None:
    """The vector's trust list as the cloud's signing keys, and its revoked and used tickets as rows."""
    async with cloud.context.sessions() as session:
        for row in (await session.exec(select(SigningKey))).all():  # the fixture's own key
            await session.delete(row)
        await session.flush()
        for entry in vector.trust_entries:
            session.add(
                SigningKey(
                    kid=entry["kid_hex"],
                    public_key=entry["public_key_hex"],
                    created_at=parse_time(entry["valid_from"]),
                    retired_at=None if entry["valid_to"] is None else parse_time(entry["valid_to"]),
                )
            )
        for ticket_id in vector.revoked | vector.used:
            claims = claims_from_json(vector.data["claims"])
            assert claims.ticket_id == ticket_id
            session.add(User(id=claims.user_id, name="Анна"))
            await session.flush()
            session.add(
                Ticket(
                    id=claims.ticket_id,
                    user_id=claims.user_id,
                    train_number=claims.train_number,
                    wagon_number=claims.wagon_number,
                    place_number=claims.place_number,
                    date=claims.date,
                    station_id=claims.station_id,
                    destination_id=claims.destination_id,
                    start_date=claims.start_date,
                    code=claims.code,
                    used=ticket_id in vector.used,
                )
            )
        await session.commit()
    for ticket_id in vector.revoked:
        path = f"/base_api/admin/ticket/{ticket_id}/revoke"
        assert (await cloud.ok("POST", path, json={"reason": "refunded"}))["revoked"] is True

    served = (await cloud.ok("GET", "/base_api/keys"))["keys"]
    wanted = sorted(
        (entry["kid_hex"], entry["valid_from"], entry["valid_to"]) for entry in vector.trust_entries
    )

    def when(value: str | None) -> dt.datetime | None:
        return None if value is None else dt.datetime.fromisoformat(value)

    assert sorted((key["kid"], when(key["valid_from"]), when(key["valid_to"])) for key in served) == [
        (kid, when(start), when(end)) for kid, start, end in wanted
    ]


def request_body(vector: Vector) -> dict[str, Any]:
    body: dict[str, Any] = {"token": vector.token}
    if vector.data["assignment"] is not None:
        body.update(vector.data["assignment"])
    return body


@by_name(VECTORS)
async def test_the_cloud_gives_the_vectors_verdict(
    cloud: Cloud, vector: Vector, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (vector.clock_tolerance, vector.holder_window) == (CLOUD_TOLERANCE, CLOUD_HOLDER_WINDOW)
    await give_the_cloud(cloud, vector)
    robot = await robot_token(cloud)
    monkeypatch.setattr("cloud_sync.desks.tickets.utcnow", lambda: vector.clock)

    response = await cloud.client.post(
        "/base_api/robot/ticket/verify", headers=robot, json=request_body(vector)
    )
    answer = await response.json()
    if vector.name in CLOUD_REFUSES_TO_READ:
        assert response.status == 422, answer
        assert [error["loc"] for error in answer["detail"]] == [["body", "token"]]
        return
    assert response.status == 200, answer
    ticket_id = (
        str(claims_from_json(vector.data["claims"]).ticket_id) if vector.verdict in WITH_CLAIMS else None
    )
    assert answer == {
        "ok": vector.verdict is Verdict.VALID,
        "verdict": vector.verdict.value,
        "reason": answer["reason"],
        "ticket_id": ticket_id,
    }
    assert vector.reason in answer["reason"]


def test_the_cloud_refuses_to_read_exactly_the_tokens_past_its_limit() -> None:
    # A vector the cloud cannot be asked about proves nothing there: the 422 above must stay the exception.
    too_long = [vector.name for vector in VECTORS if len(vector.token) > MAX_REQUEST_TOKEN]
    assert too_long == sorted(CLOUD_REFUSES_TO_READ)
